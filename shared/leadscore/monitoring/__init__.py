"""Model monitoring: whether the scores are still right once the model is in use.

Owns: reading the leads as first scored (`snapshots`: the learning loop's feature snapshots,
through a protocol of its own), drift against the training reference (`drift`), realised
accuracy, the weekly trend and the champion vs shadow challenger comparison (`accuracy`), the
monitor job (`monitor`) and its metrics (`metrics`), the report as JSON and HTML with inline
SVG (`report_html`), the shadow challenger the score function runs beside the model in use
(`shadow`), and the environments (`settings`) and wiring (`wiring`) of ModelMonitorFunction.
The training-time reference itself is the model's (`leadscore.model.reference`).
May import: model, base.
"""
