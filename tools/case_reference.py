"""Regenerate the key table of docs/case-file.md from the schema: python tools/case_reference.py"""
import re
from pathlib import Path

from rom.config import schema_reference

doc = Path(__file__).resolve().parents[1] / "docs" / "case-file.md"
text = doc.read_text()
new = re.sub(r"(## Keys\n\n).*?(\n## )", lambda m: m.group(1) + schema_reference() + m.group(2),
             text, count=1, flags=re.S)
doc.write_text(new)
print(f"{doc}: {'updated' if new != text else 'unchanged'}")
