#!/usr/bin/perl
# The C unit tests of the pure core (built by `make unit`) print TAP.
use strict;
use warnings;
use FindBin;

my $bin = "$FindBin::Bin/../build/unit-tests";
if (!-x $bin) {
    print "1..0 # SKIP build/unit-tests is not built (make unit)\n";
    exit 0;
}
exec $bin or die "exec $bin: $!";
