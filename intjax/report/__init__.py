"""Report sections as pure functions from an analysis's data to markdown lines (issue 28's layout:
one module per section; the IOI report still lives in `intjax.ioi.report` until it moves here)."""
