"""The reading half: run folders read into rows and curves, statistics, tables and figures, and
``losslab-report``. It reads what training wrote and never imports training code."""
