"""The learning loop: the model learns from this portal's own outcomes.

Owns: the point-in-time feature snapshots taken at a lead's first score and their outcomes
(`snapshots`, FeatureSnapshotTable), the outcome rules and both capture paths (`outcomes`:
the score pipeline's webhook path, `close_outcome_windows`' history path), the snapshot step
the score pipeline calls (`capture`), training sets from snapshots (`dataset`), the
champion/challenger gate (`gate`), the decision records and candidate artifacts in
ModelArtifactsBucket (`registry`, `report_html`), promotion as a new model-layer version and a
stack update (`promotion`), the shadow challenger's SSM parameter (`shadow_pointer`), the
retrain job (`retrain`) and ModelRetrainFunction's environment and wiring (`settings`,
`wiring`).
May import: dpdp, hubspot, model, base.

Only `gate`, `retrain` and `wiring` load the model (numpy, lightgbm: the model layer);
`snapshots`, `outcomes`, `capture` and `dataset` do not, so the score, consent-sweep and
retention-purge functions import them without it.
"""
