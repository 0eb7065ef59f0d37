"""The analysis as people read it, apart from computing it: the same tables as terminal text (`terminal`),
Markdown (`markdown`), one self-contained HTML page (`html`), report.json (`report_json`) and plots (`plots`);
`grids` holds the cells and tables as strings that the terminal and Markdown share. The study's LaTeX tables
and figures are drawn in `langdec.analysis.study` (`latex`, `figures`), from its files."""
