import os.path as osp
import sys
from typing import Callable


def run_cli(main: Callable[[], None], tool_file: str) -> None:
    """Run an analysis tool's ``main``; the loaders' errors name the file, key or layer, so
    show them as one line without a traceback."""
    try:
        main()
    except (FileNotFoundError, ValueError, KeyError, IndexError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError's str() is a repr
        sys.exit(f'{osp.basename(tool_file)}: error: {msg}')
