# Concurrent writers on one item across 2 workers: no lost update, no
# double apply, no negative stock, no 5xx; readers see monotonic versions.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use InvTest qw(item_ok parallel encode_json decode_json);

my $n = InvTest->start(workers => 2);

my $C = '/v1/inventory/CC-1/hub';
my $INITIAL = 10;
item_ok($n->req(PUT => $C, json => { on_hand => $INITIAL, min_level => 0 }),
        201, { on_hand => $INITIAL, version => 1 }, 'setup: item at 10, min_level 0');

my $PLUS = 20;          # children doing +1
my $PER_PLUS = 50;
my $MINUS = 4;          # children doing -1 (may get 409)
my $PER_MINUS = 30;
my $READERS = 2;

my $t0 = time;
my @res = parallel($PLUS + $MINUS + $READERS, sub {
    my ($i) = @_;
    my %st;
    my @bad;
    if ($i >= $PLUS + $MINUS) {
        # reader: versions never go backwards; invariants always hold
        my $last = 0;
        for (1 .. 100) {
            my $r = $n->req(GET => $C);
            $st{ $r->{status} }++;
            my $j = $r->{json};
            if ($r->{status} != 200 || ref $j ne 'HASH') {
                push @bad, InvTest::show($r) if @bad < 5;
                next;
            }
            push @bad, "version went back from $last to $j->{version}"
                if $j->{version} < $last;
            push @bad, "invariant broken: " . $r->{body}
                if $j->{on_hand} < 0 || $j->{available} != $j->{on_hand} - $j->{reserved};
            $last = $j->{version};
        }
        return encode_json({ role => 'reader', st => \%st, bad => \@bad });
    }
    my ($delta, $count) = $i < $PLUS ? (1, $PER_PLUS) : (-1, $PER_MINUS);
    my $ok = 0;
    for (1 .. $count) {
        my $r = $n->req(POST => "$C/adjustments", json => { delta => $delta });
        $st{ $r->{status} }++;
        if ($r->{status} == 200) {
            $ok++;
            my $j = $r->{json};
            push @bad, "negative stock in response: $r->{body}"
                if ref $j ne 'HASH' || $j->{on_hand} < 0;
        } elsif ($r->{status} == 409 && $delta < 0) {
            my $j = $r->{json};
            push @bad, "409 without insufficient-stock: $r->{body}"
                unless ref $j eq 'HASH' && ($j->{code} // '') eq 'insufficient-stock';
        } else {
            push @bad, InvTest::show($r) if @bad < 5;
        }
    }
    return encode_json({ role => $delta > 0 ? 'plus' : 'minus', ok => $ok,
                         st => \%st, bad => \@bad });
});
my $elapsed = time - $t0;

my (%acked, %st, @bad);
for my $s (@res) {
    my $j = eval { decode_json($s) };
    if (!$j) { push @bad, "child: $s"; next }
    $acked{ $j->{role} } += $j->{ok} // 0;
    $st{$_} += $j->{st}{$_} for keys %{ $j->{st} };
    push @bad, @{ $j->{bad} };
}
my $plus = $acked{plus} // 0;
my $minus = $acked{minus} // 0;
diag sprintf "%.1f s; statuses: %s; acknowledged +1: %d, -1: %d",
    $elapsed, join(', ', map { "$_ x$st{$_}" } sort keys %st), $plus, $minus;

ok(!@bad, 'no unexpected responses, invariants held, versions monotonic')
    or diag join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)];
ok(!grep({ $_ >= 500 } keys %st), 'no 5xx (or connection failures)');
is($plus, $PLUS * $PER_PLUS, 'every +1 was acknowledged');

my $r = $n->req(GET => $C);
item_ok($r, 200, { on_hand => $INITIAL + $plus - $minus,
                   version => 1 + $plus + $minus, low_stock => 0 },
        'final on_hand = initial + acked(+1) - acked(-1); version = 1 + acked');

# --- contended decrements: never below zero, exactly on_hand succeed ----------
my $D = '/v1/inventory/CC-2/hub';
item_ok($n->req(PUT => $D, json => { on_hand => 20 }), 201,
        { on_hand => 20, version => 1 }, 'setup: item at 20');
my @dec = parallel(10, sub {
    my ($ok, $short, $other) = (0, 0, '');
    for (1 .. 5) {
        my $r = $n->req(POST => "$D/adjustments", json => { delta => -1 });
        if ($r->{status} == 200) { $ok++ }
        elsif ($r->{status} == 409
               && ref $r->{json} eq 'HASH'
               && ($r->{json}{code} // '') eq 'insufficient-stock'
               && ($r->{json}{available} // -1) == 0) { $short++ }
        else { $other .= InvTest::show($r) . "\n" }
    }
    return encode_json([$ok, $short, $other]);
});
my ($dok, $dshort, $dother) = (0, 0, '');
for (@dec) {
    my $j = eval { decode_json($_) } or do { $dother .= "child: $_\n"; next };
    $dok += $j->[0];
    $dshort += $j->[1];
    $dother .= $j->[2];
}
is($dok, 20, '50 racing -1s on 20 in stock: exactly 20 succeed');
is($dshort, 30, '... and 30 get 409 insufficient-stock with available 0');
is($dother, '', '... and nothing else') or diag $dother;
item_ok($n->req(GET => $D), 200, { on_hand => 0, available => 0, version => 21 },
        '... leaving on_hand 0, version 21');

# --- racing creations: exactly one 201 ----------------------------------------
for my $how (['PUT', sub { $n->req(PUT => '/v1/inventory/RACE-PUT/x',
                                   json => { on_hand => 1 }) }],
             ['adjustment', sub { $n->req(POST => '/v1/inventory/RACE-ADJ/x/adjustments',
                                          json => { delta => 1 }) }])
{
    my ($what, $code) = @$how;
    my @st = parallel(10, sub { $code->()->{status} });
    my %c;
    $c{$_}++ for @st;
    is($c{201} // 0, 1, "10 racing ${what}s on a new item: exactly one 201")
        or diag explain \%c;
    is($c{200} // 0, 9, "... and nine 200") or diag explain \%c;
}
item_ok($n->req(GET => '/v1/inventory/RACE-PUT/x'), 200,
        { on_hand => 1, version => 10 }, 'racing PUTs: version 10');
item_ok($n->req(GET => '/v1/inventory/RACE-ADJ/x'), 200,
        { on_hand => 10, version => 10 }, 'racing adjustments: on_hand 10, version 10');

# --- many items at once: no cross-talk ------------------------------------------
my @many = parallel(8, sub {
    my ($i) = @_;
    my $fail = 0;
    for my $k (1 .. 10) {
        my $r = $n->req(POST => "/v1/inventory/M-$i/l$k/adjustments",
                        json => { delta => $i * 100 + $k });
        $fail++ unless $r->{status} == 201;
    }
    return $fail;
});
is("@many", join(' ', (0) x 8), '80 concurrent creations on distinct items all 201');
my $wrong = 0;
for my $i (0 .. 7) {
    my $r = $n->req(GET => "/v1/inventory/M-$i");
    my $want = 0;
    $want += $i * 100 + $_ for 1 .. 10;
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    unless ($r->{status} == 200 && ($j->{on_hand} // -1) == $want
            && ref $j->{locations} eq 'ARRAY' && @{ $j->{locations} } == 10) {
        $wrong++;
        diag InvTest::show($r);
    }
}
is($wrong, 0, 'each SKU aggregate holds exactly its 10 locations and sum');

$n->stop;
done_testing;
