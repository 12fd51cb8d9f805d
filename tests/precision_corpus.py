"""A whole terminology as a precision corpus: every ICD-10-CM code with its official text.

`simple-icd-10-cm` (a dev dependency, pinned) ships the CMS tabular list. `NAMES` says,
for each category the service reads from text, which words of a description *name* that
finding; a match whose description does not is a false match. These checks are written
as a reader would judge a description, independently of the term lists they check.
"""

from __future__ import annotations

import functools
import re
import warnings

# the chapters whose text is never read for complaints or red flags (§7b T1.6)
BARRED_CHAPTERS = ("Q", "Z")

_WEAK_SITE = r"(muscles?|limbs?|arms?|legs?|hands?|generali[sz]ed)"

NAMES: dict[str, re.Pattern[str]] = {
    key: re.compile(pattern, re.I)
    for key, pattern in {
        "complaint": r"\btwitch|\bfascicul|\bmyokym|\btics?\b|\b(hemi)?facial spasm",
        "red-flag:facial-weakness": (
            r"\b(facial|face) (weakness|droop|palsy|paralysis)|\bdroop|\bfacial asymmetry"
        ),
        "red-flag:slurred-speech": r"\bslurr|\bdysarthri|\banarthri|\b(difficulty|trouble) speak",
        "red-flag:dysphagia": r"\bdysphag|\b(difficulty|trouble) swallow",
        "red-flag:limb-weakness": (
            rf"\b{_WEAK_SITE}\b.*\bweakness|\bweakness\b.*\b{_WEAK_SITE}\b|^weakness$"
            r"|\b(hemi|mono|para|tetra|quadri)paresis"
        ),
        "red-flag:numbness": (
            r"\bnumb|\btingl|pins and needles|\bpara?esthes|\bhypo(a)?esthes"
            r"|\banesthesia of skin|\bdisturbances? of skin sensation"
        ),
        "red-flag:vision-changes": (
            r"\bvision\b|\bvisual\b|\bdiplopia\b|\bblind|\bscotoma|\bfield defects?\b"
            r"|\barcuate defects?\b"
        ),
        "red-flag:facial-pain": r"\b(facial|face) pain|pain in the face|\btrigeminal neuralgia",
        "red-flag:chewing-trigger": r"(triggered|brought on) by chewing|(worse|when) .*chewing",
        "spreading": r"\bspread",
        "known:als": r"amyotrophic lateral sclerosis|\bALS\b|motor neurone? disease",
        "known:parkinsons": r"\bparkinson",
        "known:tourette": r"\btourette",
        "known:bells-palsy": r"\bbell'?s? palsy",
        "known:hemifacial-spasm": r"\bhemifacial spasm",
        "hypoparathyroidism": (
            r"hypoparathyroid|parathyroid insufficiency|autosomal dominant hypocalcemia"
        ),
    }.items()
}


@functools.cache
def icd10cm() -> tuple[tuple[str, str], ...]:
    """(code with its dot, official description) for every category and code below it."""
    with warnings.catch_warnings():
        # the package reads its data with an importlib.resources call deprecated in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as icd

        codes = icd.get_all_codes(with_dots=True)
        return tuple(
            (code, icd.get_description(code))
            for code in codes
            if not icd.is_chapter_or_block(code)
        )


def barred(code: str) -> bool:
    return code.startswith(BARRED_CHAPTERS)


def names(key: str, description: str) -> bool:
    """True when `description` names the finding of category `key`."""
    return bool(NAMES[key].search(description))
