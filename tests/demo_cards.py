"""What each demo patient must produce: card kind -> indicator (clinical reference §5).

The one table of demo expectations. The CLI, demo, conformance and integration tests
read it; a demo patient without an entry here fails `test_every_demo_has_an_expectation`.
"""

DEMO_CARDS: dict[str, dict[str, str]] = {
    "benign-twitch-normal-labs": {"lifestyle-advice": "info"},
    "low-magnesium-mgdl": {"hypomagnesemia-workup": "warning", "lifestyle-advice": "info"},
    # K 3.1 sent as "mEq/L" (not valid UCUM) is still read as 3.1 mmol/L
    "low-potassium-meq": {"hypokalemia-workup": "warning", "lifestyle-advice": "info"},
    # corrected Ca 7.9 + 0.8 x (4.0 - 2.8) = 8.86 mg/dL: not low, whatever the lab flag says
    "low-calcium-low-albumin": {"lifestyle-advice": "info"},
    # sertraline started 14 days before onset: inside the 30-day window
    "ssri-started-before-twitch": {
        "medication-side-effect:sertraline": "warning",
        "lifestyle-advice": "info",
    },
    # a critical red flag suppresses the lifestyle card (R1)
    "facial-droop": {"neurology-referral-red-flag": "critical"},
    "no-complaint": {},
    # 200-day-old results are stale: order again, never judge them
    "stale-labs": {"lab-workup-missing": "info", "lifestyle-advice": "info"},
    # Ca 8.7 below the lab's pediatric range 8.8-10.8 mg/dL
    "pediatric-twitch": {"hypocalcemia-workup": "warning", "lifestyle-advice": "info"},
    # "Denies facial weakness, slurred speech, dysphagia. Facial droop: none": no red flag
    "negated-red-flag": {"lifestyle-advice": "info"},
    # no twitch on the problem list: the visit's reason (Encounter.reasonCode) names it
    "visit-reason-twitch": {"lifestyle-advice": "info"},
    # facial droop recorded as an exam Observation (present); slurred speech examined, absent
    "exam-facial-droop": {"neurology-referral-red-flag": "critical"},
    # potassium "<2.5 mmol/L": at most 2.5, so critically low; no "usually harmless" card
    "potassium-below-2-5": {"hypokalemia-workup": "critical"},
}
