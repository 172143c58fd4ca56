/* Coverage builds only (setup.py with CAIO_COVERAGE=1, nox -s coverage).
 *
 * gcov writes its counters when the process exits normally; a forked child
 * that ends with os._exit() (every test child that checks what a context
 * does after fork) would take its counts with it. The coverage session's
 * venv patches os._exit to call this first, in each caio extension (each
 * has its own counters). Not in any other build. */
#ifdef CAIO_COVERAGE
void __gcov_dump(void);

__attribute__((visibility("default"))) void caio_coverage_dump(void)
{
    __gcov_dump();
}
#else
typedef int caio_coverage_unused;   /* ISO C wants something in a file */
#endif
