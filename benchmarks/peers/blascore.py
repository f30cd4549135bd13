"""The kernel family the loaded OpenBLAS runs, for peer benchmarks: a ratio
against a BLAS that fell back to a generic core is not reported."""
import ctypes
import ctypes.util
import glob

GENERIC = {"prescott", "core2", "atom", "katmai", "coppermine", "northwood", "banias", "penryn", "dunnington",
           "nehalem", "generic", "unknown", ""}


def corename():
    """openblas_get_corename() of the OpenBLAS this process loaded, or ""."""
    # The process's own symbols first (numpy/torch loaded libblas.so.3 from
    # OpenBLAS), then the library by name.
    for lib in [None, "libblas.so.3", "libopenblas.so.0"] + glob.glob("/usr/lib/*/openblas*/libopenblas*.so*"):
        try:
            h = ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            f = h.openblas_get_corename
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_char_p
        return f().decode()
    return ""


def check():
    """The core name, and whether it is a real (not generic) kernel."""
    name = corename()
    return name, name.lower() not in GENERIC
