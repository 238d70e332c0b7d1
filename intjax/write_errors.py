"""One line for a write that failed for want of space or permission (also where a library wrapped the
OSError, as orbax's tensorstore does: `ValueError: RESOURCE_EXHAUSTED ... [os_error_code='28']`)."""

from __future__ import annotations

import errno
import re
from typing import Optional

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}
_CODE = re.compile(r"os_error_code='?(\d+)")
_FILE = re.compile(r'(?:file|writing):? "([^"]+)"')


def _errno_and_file(exc: BaseException) -> tuple[Optional[int], Optional[str]]:
    """The errno and file of `exc` when it is an OSError or names one in its message, else (None, None)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno, exc.filename
    code = _CODE.search(str(exc))
    if code:
        file = _FILE.search(str(exc))
        return int(code.group(1)), file.group(1) if file else None
    return None, None


def write_failure(exc: BaseException, out: Optional[str]) -> Optional[str]:
    """A one-line message when `exc` (or an exception it was raised from or during) is a write that failed
    because the disk is full or the file is not writable; None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code, file = _errno_and_file(exc)
        where = f" (writing {file})" if file else ""
        folder = f" of {out}" if out else ""
        if code in _FULL:
            return (f"no space left on the disk{folder}{where}; free some space or give another --out, then run "
                    "the same command again (it resumes from the chunks already saved)")
        if code in _REFUSED:
            return f"cannot write{where}: permission denied or read-only; give an --out you can write to"
        exc = exc.__cause__ or exc.__context__
    return None
