"""Where the time of one patient-view goes, in-process, step by step; and what validating
every resource with the R4B models would cost instead ("select before you validate").

    .venv/bin/python bench/pipeline_profile.py [--runs 30]

Uses the ~250-resource request of bench/workload.py. Each step is timed on its own over
--runs repetitions after a warm-up, and the median is printed: JSON parsing, envelope
checks, prefetch resolution, facts (which checks the R4 shape of only the resources the
rules select), rule evaluation, card building, the conformance check (run by the tests,
not per call), recording the cards in a SQLite store, and serialising the answer; then
the whole HTTP request through Flask's test client. Last, every prefetch resource is
validated with its fhir.resources R4B model, as a service that validated before
selecting would, and compared.

A report, not a test: it prints and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.workload import SERVICE, count_resources, full_prefetch_request  # noqa: E402


def median_ms(
    action: Callable[[Any], Any],
    runs: int,
    fresh: Callable[[], Any] = lambda: None,
    warmup: int = 3,
) -> float:
    """Median time of `action(fresh())`; `fresh` runs untimed before each call.

    Steps that read resources get newly parsed ones every time: validating a resource
    dict leaves it faster to validate again, so reused input would flatter them.
    """
    for _ in range(warmup):
        action(fresh())
    samples = []
    for _ in range(runs):
        given = fresh()
        started = time.perf_counter()
        action(given)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def prefetch_resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource of the prefetch: Bundle entries, and bare resources."""
    resources = []
    for value in request["prefetch"].values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            resources.extend(e["resource"] for e in value.get("entry", []))
        else:
            resources.append(value)
    return resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed repetitions per step (30)")
    args = parser.parse_args(argv)

    from fhir.resources.R4B import get_fhir_model_class

    import fhir_mapping.facts as facts_module
    from cds_hooks import create_app
    from cds_hooks.conformance import response_problems
    from cds_hooks.hooks.call import HookCall, HookResult
    from cds_hooks.hooks.pipeline import parse_request, run_hook
    from cds_hooks.hooks.prefetch import resolve_data
    from cds_hooks.runtime import runtime
    from fhir_mapping import shape
    from fhir_mapping.cards import build_cards
    from fhir_mapping.facts import extract_facts
    from knowledge.engine import evaluate

    request = full_prefetch_request()
    body = json.dumps(request).encode()
    entries = prefetch_resources(request)

    with tempfile.TemporaryDirectory(prefix="lipcds-profile-") as tmp:
        app = create_app(
            {
                "env": "development",
                "auth_mode": "disabled",
                "database_url": f"sqlite:///{Path(tmp) / 'lipcds.db'}",
                "patient_id_key": uuid.uuid4().hex + uuid.uuid4().hex,
                "log_level": "ERROR",
            }
        )
        rt = runtime(app)
        try:
            kb, policy = rt.kb, rt.policy
            service = kb.services[SERVICE]
            now = rt.settings.clock()

            def fresh_body() -> dict[str, Any]:
                return json.loads(body)

            parsed = json.loads(body)
            envelope, context = parse_request(service, parsed)
            data = resolve_data(service, envelope, envelope["context"], None)
            patient_id = context["patient_id"]
            facts = extract_facts(data, kb, now=now, patient_id=patient_id)
            evaluation = evaluate(facts, kb, policy)

            def cards() -> list[dict[str, Any]]:
                return build_cards(
                    evaluation,
                    kb,
                    patient_id=patient_id,
                    hook_instance=envelope["hook_instance"],
                )

            result = HookResult(cards=cards(), evaluation=evaluation)
            response = result.response()
            call = HookCall(
                service=service,
                hook_instance=envelope["hook_instance"],
                context=context,
                data=data,
                now=now,
                kb=kb,
                site=rt.sites.for_call(None, None),
                shown_cards=rt.store,
            )
            recorders = rt.listeners

            def record() -> None:
                call.hook_instance = str(uuid.uuid4())  # a new call each time, as live
                for listener in recorders:
                    listener(call, result)

            # The resources facts validates: it selects what the rules read, then validates.
            validated: list[tuple[Any, dict]] = []
            real_problem = facts_module.validation_problem

            def counting(resource_type: str, resource: dict) -> str | None:
                validated.append((resource_type, resource))
                return real_problem(resource_type, resource)

            facts_module.validation_problem = counting
            try:
                extract_facts(data, kb, now=now, patient_id=patient_id)
            finally:
                facts_module.validation_problem = real_problem

            def fresh_data() -> dict[str, Any]:
                envelope, _ = parse_request(service, json.loads(body))
                return resolve_data(service, envelope, envelope["context"], None)

            steps: list[tuple[str, Callable[[Any], Any], Callable[[], Any]]] = [
                ("parse JSON body", lambda _: json.loads(body), lambda: None),
                ("check envelope and context", lambda p: parse_request(service, p), fresh_body),
                (
                    "resolve prefetch",
                    lambda p: resolve_data(service, p, p["context"], None),
                    fresh_body,
                ),
                (
                    "facts (select, then check)",
                    lambda d: extract_facts(d, kb, now=now, patient_id=patient_id),
                    fresh_data,
                ),
                ("evaluate rules", lambda _: evaluate(facts, kb, policy), lambda: None),
                ("build cards", lambda _: cards(), lambda: None),
                (
                    "conformance check (tests only)",
                    lambda _: response_problems(response),
                    lambda: None,
                ),
                ("record cards (SQLite)", lambda _: record(), lambda: None),
                ("serialise the answer", lambda _: json.dumps(response), lambda: None),
            ]
            client = app.test_client()

            def http(_: Any) -> None:
                client.post(f"/cds-services/{SERVICE}", data=body, content_type="application/json")

            print(
                f"workload: patient-view, {count_resources(request)} prefetch resources, "
                f"{len(body) / 1024:.0f} KiB, {len(response['cards'])} cards; "
                f"median of {args.runs} runs per step"
            )
            print()
            timings = [(name, median_ms(act, args.runs, fresh)) for name, act, fresh in steps]
            total = sum(ms for _, ms in timings)
            for name, ms in timings:
                print(f"  {name:<34} {ms:8.2f} ms  {ms / total:6.1%}")
            print(f"  {'sum of the steps':<34} {total:8.2f} ms")
            whole = median_ms(http, args.runs)
            print(f"  {'whole request (Flask test client)':<34} {whole:8.2f} ms")
            direct = median_ms(lambda p: run_hook(rt, SERVICE, p), args.runs, fresh_body)
            print(f"  {'run_hook on a parsed body':<34} {direct:8.2f} ms")

            models = {r["resourceType"]: get_fhir_model_class(r["resourceType"]) for r in entries}

            def validate_all(resources: list[dict[str, Any]]) -> None:
                for resource in resources:
                    models[resource["resourceType"]].model_validate(resource)

            def validate_selected(copies: list[tuple[Any, dict]]) -> None:
                for resource_type, resource in copies:
                    shape.problem(resource, resource_type)

            full = median_ms(validate_all, args.runs, lambda: prefetch_resources(json.loads(body)))
            selected = median_ms(
                validate_selected,
                args.runs,
                lambda: [(m, json.loads(json.dumps(r))) for m, r in validated],
            )
            facts_ms = dict(timings)["facts (select, then check)"]
            types = [resource.get("resourceType", "?") for _, resource in validated]
            kinds = ", ".join(f"{types.count(k)} {k}" for k in sorted(set(types)))
            print()
            print("select before you validate:")
            print(
                f"  facts checks {len(validated)} of {len(entries)} resources ({kinds}) for their "
                f"R4 shape: {selected:.2f} ms of its {facts_ms:.2f} ms"
            )
            print(
                f"  validating all {len(entries)} with the R4B models: {full:.2f} ms "
                f"({full / len(entries):.3f} ms each), {full / selected:.1f}x the selected"
            )
            estimate = whole - selected + full
            print(
                f"  a request that validated everything first: about {estimate:.1f} ms, "
                f"{estimate / whole:.1f}x the {whole:.1f} ms measured"
            )
        finally:
            if rt.store is not None:
                rt.store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
