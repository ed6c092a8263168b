# Splits a vendor-data document (stdin) with cloud-init's own code, as an instance would, and writes
# each shell part the way cloud-init's shell-script handler does (scripts/vendor/<filename>, 0700).
# Prints a JSON list of {type, filename, payload, written}. Run with Debian's /usr/bin/python3.
# Usage: /usr/bin/python3 cloud-init-parts.py CLOUD_DIR < vendor-data
import json
import os
import sys

from cloudinit import helpers, user_data, util
from cloudinit.handlers.shell_script import ShellScriptPartHandler

cloud_dir = sys.argv[1]
paths = helpers.Paths({"cloud_dir": cloud_dir, "run_dir": os.path.join(cloud_dir, "run")})
message = user_data.UserDataProcessor(paths).process(sys.stdin.buffer.read())
handler = ShellScriptPartHandler(paths, script_path="vendor_scripts")
parts = []
for part in message.walk():
    if part.get_content_maintype() == "multipart":
        continue
    ctype = part.get_content_type()
    filename = part.get_filename()
    payload = util.fully_decoded_payload(part)
    written = None
    if ctype == "text/x-shellscript":
        handler.handle_part(None, ctype, filename, payload, None)
        written = os.path.join(paths.get_ipath_cur("vendor_scripts"), filename)
    parts.append({"type": ctype, "filename": filename, "payload": payload, "written": written})
json.dump(parts, sys.stdout)
