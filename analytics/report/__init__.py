"""The HTML report of a run: one self-contained ``report.html`` with inline SVG charts."""
