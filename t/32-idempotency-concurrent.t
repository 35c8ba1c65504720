# Concurrent repeats of one keyed request apply once (one runs, the others
# are replays or 409 idempotency-key-in-flight); a repeat sent after the
# answer arrived is always a replay, never "in flight".
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok parallel encode_json decode_json ipath idem_key
               replayed);

my $n = InvTest->start(workers => 2);

# ==========================================================================
# concurrent repeats of one request apply once
# ==========================================================================

item_ok($n->put_item('I-8', 'a', { on_hand => 100 }), 201, {}, 'setup: I-8 at a, 100');
my @res = parallel(12, sub {
    my $r = $n->reserve('I-8', 'a', { quantity => 7 }, headers => { idem_key('race-1') });
    return encode_json({ status => $r->{status}, body => $r->{body},
                         replayed => replayed($r) ? 1 : 0,
                         code => ($r->{json} // {})->{code} // '' });
});
my (@fresh, @again, @busy, @bad);
for my $s (@res) {
    my $j = eval { decode_json($s) };
    if (!$j) { push @bad, $s; next }
    if ($j->{status} == 201) { push @{ $j->{replayed} ? \@again : \@fresh }, $j }
    elsif ($j->{status} == 409 && $j->{code} eq 'idempotency-key-in-flight') { push @busy, $j }
    else { push @bad, $s }
}
ok(!@bad, 'concurrent repeats: only 201 or 409 idempotency-key-in-flight')
    or diag join "\n", @bad;
is(scalar @fresh, 1, sprintf('exactly one ran (%d replayed, %d in flight)',
                             scalar @again, scalar @busy));
my %bodies = map { $_->{body} => 1 } @fresh, @again;
is(scalar keys %bodies, 1, 'every 201 has the same body (one reservation id)');
item_ok($n->get(ipath('I-8', 'a')), 200, { reserved => 7, version => 2 },
        'reserved 7 once, one StockReserved');

# ==========================================================================
# a repeat sent after the answer was received is a replay, never "in flight"
# ==========================================================================

{
    # 6 clients, each with its own key, each repeating its request as soon
    # as it has the previous answer: every repeat must be a replay
    my @keys = map { "seq-$_" } 0 .. 5;
    for my $i (0 .. $#keys) {
        my $r = $n->adjust('I-9', "l$i", { delta => 1 }, headers => { idem_key($keys[$i]) });
        item_ok($r, 201, { on_hand => 1 }, "setup: I-9 at l$i created with key $keys[$i]");
    }
    my @res = parallel(scalar @keys, sub {
        my ($i) = @_;
        my (%st, @odd);
        for (1 .. 60) {
            my $r = $n->adjust('I-9', "l$i", { delta => 1 }, headers => { idem_key($keys[$i]) });
            my $tag = $r->{status} . (replayed($r) ? ' replayed' : '');
            $st{$tag}++;
            push @odd, InvTest::show($r) if $tag ne '201 replayed' && @odd < 1;
        }
        return encode_json({ st => \%st, odd => \@odd });
    });
    my (%st, @odd);
    for my $s (@res) {
        my $j = eval { decode_json($s) } // { st => { $s => 1 }, odd => [] };
        $st{$_} += $j->{st}{$_} for keys %{ $j->{st} };
        push @odd, @{ $j->{odd} };
    }
    is($st{'201 replayed'} // 0, 360,
       'sequential repeats, each sent after the previous answer arrived: all '
       . 'replays (' . join(', ', map { "$_ x$st{$_}" } sort keys %st) . ')')
        or diag join "\n", @odd[0 .. ($#odd > 1 ? 1 : $#odd)];
    my @items = map { ($n->get(ipath('I-9', "l$_"))->{json} // {})->{on_hand} // -1 } 0 .. $#keys;
    is("@items", join(' ', (1) x @keys), '... each applied once');
}

$n->stop;
done_testing;
