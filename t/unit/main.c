/* Unit tests of the module's pure C core: prints TAP for prove. */

#include "tap.h"

int  tap_n, tap_failed;


int
main(void)
{
    test_core();
    test_states();
    test_codec();
    test_json();
    test_render();
    test_pack();
    test_store();
    test_repl();
    test_uri();
    test_proc();

    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}
