"""Time the two ways to print the HTML report to PDF: headless Chromium's --print-to-pdf (what
`privaudit report --pdf` uses) and WeasyPrint (not a dependency: install it yourself, e.g.
`pip install --target /tmp/wp weasyprint`, and pass that folder). Prints JSON.

    python benchmarks/pdf_renderers.py RUN_DIR/report/index.html [WEASYPRINT_FOLDER]
"""
import sys, time, subprocess, json
html = sys.argv[1]
t=time.time()
sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else '/tmp/wp')
from weasyprint import HTML
HTML(filename=html).write_pdf('/tmp/wp_out.pdf')
wp=time.time()-t
t=time.time()
subprocess.run(['chromium','--headless','--disable-gpu','--no-sandbox','--no-pdf-header-footer',f'--print-to-pdf=/tmp/ch_out.pdf','file://'+html],capture_output=True,timeout=120)
ch=time.time()-t
import os
print(json.dumps({"weasyprint_s":round(wp,2),"chromium_s":round(ch,2),"weasyprint_kb":os.path.getsize('/tmp/wp_out.pdf')//1024,"chromium_kb":os.path.getsize('/tmp/ch_out.pdf')//1024}))
