"""Market data scanner (MDS): secondary analysis over WDC pub/sub (daily range, HOD/LOD alerts).

:class:`Scanner` runs in-process too (the demo); ``mdp-scanner`` is the service.
"""

from mdp_scanner.scanner import Scanner, ScannerStats
from mdp_scanner.settings import ScannerSettings

__all__ = ["Scanner", "ScannerSettings", "ScannerStats"]
