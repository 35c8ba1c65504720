# Reads of many items and of the ledger:
#
# * GET /v1/events?reference=REF&after=SEQ&limit=N: exactly the events of
#   the feed whose data carries REF (a prefix, another case or another
#   reference are not it), in seq order, from every route (counts,
#   adjustments and their LowStockDetected, moves, reservations of an item
#   and carts with their commit, release and expiry, transfers, batches);
#   paged by after = last_seq (the last event sent while more follow,
#   else the log's end), also while events are written between pages; a
#   reference with reserved URL characters, percent-encoded; bad
#   references, wait, limit and after are 400.
# * GET /v1/inventory?changed_after=SEQ&limit=N: the items whose latest
#   event is after SEQ, each once, by that seq; next_changed_after the
#   last item's seq while more follow, null at the end. The contract
#   while writes happen between pages: a client that pages on, then asks
#   again from the last seq it saw, has seen every item's latest state;
#   an item appears again only after it changed (at the end: its new
#   seq), never twice in a page, never one whose latest event is at or
#   before SEQ; seqs only grow. limit 1..1000, bad arguments 400.
# * POST /v1/inventory/query {"items":[...]}: the items found in request
#   order (duplicates as asked), "missing" the others; 1..500 (a body over
#   64 KiB is fine, over 512 KiB not); errors "items[i].field"; appends
#   nothing. GET /v1/inventory/query is the SKU "query".
# * A follower, caught up, answers the three reads byte for byte as the
#   primary, and applies batches (atomic, not atomic, refused; and many
#   at once, refused atomic ones in the group commit's transactions with
#   other writes) as the primary did: its items and its whole store
#   (inventory-admin dump --all) equal.
# * The 405 of /v1/inventory/query names every method of the path (GET,
#   HEAD: the SKU "query"; POST: the query).
#
# SEED=n repeats the random writes between pages.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use InvTest qw(item_problems json_type show header problem_ok ipath
               feed_pages last_seq wait_applied same_store_ok items_snapshot
               unchanged encode_json parallel);

my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;
my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";
srand $SEED;

my $REPL = 'location /replication/ { inventory_replication; }';
my $P = InvTest->start(server_extra => $REPL);

# every item written, "SKU/LOC" => 1
my %KNOWN;
sub known { $KNOWN{"$_[0]/$_[1]"} = 1 }

sub change {
    my ($op, $sku, $loc, $f) = @_;
    known($sku, $loc);
    return { op => $op, sku => $sku, location => $loc, %{ $f // {} } };
}

# esc($s): every byte but [A-Za-z0-9] percent-encoded
sub esc { my ($s) = @_; $s =~ s/([^A-Za-z0-9])/sprintf '%%%02X', ord $1/ge; $s }

# w($r, $want, $what): a setup write answered as expected
sub w {
    my ($r, $want, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->{status}, $want, "setup: $what: $want") or diag show($r);
    return $r->{json} // {};
}

# ==========================================================================
# GET /v1/events?reference=
# ==========================================================================

my $REF = 'ord:1';
{
    my $n = $P;
    known('I-1', 'w'); known('I-2', 'w'); known('I-1', 'v'); known('I-3', 'w');
    w($n->put_item('I-1', 'w', { on_hand => 20, min_level => 5,
                                 reference => $REF }), 201, 'count I-1');
    w($n->put_item('I-2', 'w', { on_hand => 10 }), 201, 'count I-2');
    w($n->adjust('I-1', 'w', { delta => -16, reference => $REF }), 200,
      'adjust I-1 below min_level (LowStockDetected)');
    w($n->adjust('I-2', 'w', { delta => 1, reference => 'ord:10' }), 200,
      'an adjustment of ord:10');
    w($n->adjust('I-1', 'w', { delta => 10, state => 'incoming',
                               reference => 'ORD:1' }), 200,
      'an adjustment of ORD:1');
    w($n->req(POST => ipath('I-1', 'w') . '/moves',
              json => { from => 'incoming', to => 'available', quantity => 10,
                        reference => $REF }), 200, 'a move');
    my $res = w($n->reserve('I-2', 'w', { quantity => 2, reference => $REF }),
                201, 'a reservation');
    w($n->commit($res->{id}), 200, 'its commit, without a body');
    $res = w($n->reserve('I-2', 'w', { quantity => 1, reference => $REF }),
             201, 'another reservation');
    w($n->release($res->{id}, json => { reference => 'ord:2' }), 200,
      'its release naming ord:2');
    $res = w($n->cart({ reference => $REF, lines => [
                  { sku => 'I-1', location => 'w', quantity => 1 },
                  { sku => 'I-2', location => 'w', quantity => 1 } ] }),
             201, 'a cart');
    w($n->release($res->{id}), 200, 'its release, without a body');
    w($n->adjust('I-2', 'w', { delta => 1, reference => 'ord:' }), 200,
      'an adjustment of ord:');
    w($n->transfer({ sku => 'I-1', from => 'w', to => 'v', quantity => 2,
                     reference => $REF }), 200, 'a transfer');
    w($n->batch({ reference => $REF, changes => [
          change(count => 'I-3', 'w', { on_hand => 5 }),
          change(adjust => 'I-2', 'w', { delta => 1, reference => 'ord:3' }),
          change(move => 'I-1', 'w', { from => 'available', to => 'damaged',
                                       quantity => 1 }) ] }),
      200, 'a batch');
    w($n->adjust('I-3', 'w', { delta => 1, reference => 'ord:1/x' }), 200,
      'an adjustment of ord:1/x');
    w($n->adjust('I-3', 'w', { delta => 1 }), 200, 'no reference');
}

# the truth: the feed's events that carry the reference
sub ref_events {
    my ($n, $ref) = @_;
    my ($ev, $p) = feed_pages($n, 0, 1000);
    fail("the feed pages: @$p") if @$p;
    return [ grep { ($_->{data}{reference} // '') eq $ref } @$ev ];
}

# ref_pages($n, $ref, $after, $limit, $between): the pages of the
# reference's events from $after, following last_seq until an empty page;
# $between->() runs between pages.  Returns (\@events, \@problems,
# $last_seq of the empty page)
sub ref_pages {
    my ($n, $ref, $after, $limit, $between) = @_;
    my (@ev, @p);
    for (1 .. 10000) {
        my $r = $n->get('/v1/events?reference=' . esc($ref)
                        . "&after=$after&limit=$limit");
        my $j = $r->{json};
        if ($r->{status} != 200 || ref $j ne 'HASH'
            || ref $j->{events} ne 'ARRAY')
        {
            push @p, 'page after ' . $after . ': ' . show($r);
            last;
        }
        my @k = grep { !/^(?:events|last_seq)\z/ } sort keys %$j;
        push @p, "page after $after has members @k" if @k;
        my $page = $j->{events};
        my $store = last_seq($n);
        push @p, "page after $after: " . @$page . " events, limit $limit"
            if @$page > $limit;
        my $prev = $after;
        for my $e (@$page) {
            push @p, "page after $after: seq $e->{seq} after $prev"
                unless $e->{seq} > $prev;
            $prev = $e->{seq};
        }
        my $want_last = @$page == $limit && @$page
                        && @{ ref_events_after($n, $ref, $prev) }
                      ? $prev : $store > $after ? $store : $after;
        push @p, "page after $after: last_seq " . ($j->{last_seq} // 'null')
                 . ", expected $want_last"
            unless json_type($j->{last_seq}) eq 'number'
                   && $j->{last_seq} == $want_last;
        push @ev, @$page;
        return (\@ev, \@p, $j->{last_seq}) unless @$page;
        $after = $j->{last_seq} // last;
        $between->() if $between;
    }
    return (\@ev, \@p, undef);
}

# the reference's events after $seq, from the feed
sub ref_events_after {
    my ($n, $ref, $seq) = @_;
    return [ grep { $_->{seq} > $seq } @{ ref_events($n, $ref) } ];
}

{
    my $n = $P;
    my $want = ref_events($n, $REF);
    my %types = map { $_->{type} => 1 } @$want;
    is_deeply([ sort keys %types ],
              [ sort qw(StockCounted StockAdjusted LowStockDetected StockMoved
                        StockReserved ReservationCommitted ReservationReleased
                        StockTransferredOut StockTransferredIn) ],
              'the events of ord:1 are of every kind of write');
    my $K = @$want;
    is($K, 15, '... 15 of them');
    my $r = $n->get("/v1/events?reference=$REF&limit=1000");
    is($r->{status}, 200, "GET /v1/events?reference=$REF: 200");
    is_deeply(($r->{json} // {})->{events}, $want,
              '... exactly the feed\'s events carrying it, in seq order, as '
              . 'the feed gives them (not ord:10, ORD:1, ord:, ord:1/x, nor '
              . 'the release naming ord:2, nor the change of ord:3)');
    is(($r->{json} // {})->{last_seq}, last_seq($n),
       '... last_seq: the log\'s end');
    is(header($r, 'inventory-seq'), last_seq($n), '... Inventory-Seq too');
    my ($ev) = grep { $_->{type} eq 'ReservationCommitted' } @$want;
    ok($ev && !exists $ev->{data}{reason},
       'a commit without a body carries its reservation\'s reference');

    for my $limit (1, 2, 3, 5, $K - 1, $K, $K + 1, 1000) {
        my ($got, $p, $end) = ref_pages($n, $REF, 0, $limit);
        is_deeply($p, [], "limit $limit: every page keeps the contract");
        is_deeply([ map { $_->{seq} } @$got ], [ map { $_->{seq} } @$want ],
                  "limit $limit: the pages give every event once, in order");
        is($end, last_seq($n), "limit $limit: ... ending at the log's end");
    }
    my $mid = $want->[7]{seq};
    $r = $n->get("/v1/events?reference=$REF&after=$mid&limit=1000");
    is_deeply([ map { $_->{seq} } @{ ($r->{json} // {})->{events} // [] } ],
              [ map { $_->{seq} } @$want[8 .. $#$want] ],
              'after the 8th event\'s seq: the 8 after it');
    $r = $n->get("/v1/events?reference=$REF&after=" . ($mid - 1) . '&limit=1');
    is_deeply([ map { $_->{seq} } @{ ($r->{json} // {})->{events} // [] } ],
              [ $mid ], 'after its seq - 1, limit 1: that event');
    is(($r->{json} // {})->{last_seq}, $mid, '... last_seq its seq');

    $r = $n->get('/v1/events?reference=nothing:here');
    is_deeply($r->{json}, { events => [], last_seq => last_seq($n) },
              'a reference no event carries: no events, last_seq the log\'s '
              . 'end');
    my $far = last_seq($n) + 100;
    $r = $n->get("/v1/events?reference=$REF&after=$far");
    is_deeply(($r->{json} // {})->{events}, [], 'after past the log\'s end: '
              . 'no events');
    cmp_ok(($r->{json} // {})->{last_seq} // -1, '>=', last_seq($n),
           '... last_seq not before the log\'s end');

    # writes between pages: the pages go on to the new events, none twice
    my $k = 0;
    my ($got, $p) = ref_pages($n, $REF, 0, 3, sub {
        $k++;
        $n->adjust('I-3', 'w', { delta => 1, reference => $REF })
            if $k % 2;
        $n->adjust('I-3', 'w', { delta => 1, reference => 'ord:9' });
    });
    is_deeply($p, [], 'writes between the pages: every page keeps the '
              . 'contract');
    $want = ref_events($n, $REF);
    is_deeply([ map { $_->{seq} } @$got ], [ map { $_->{seq} } @$want ],
              '... the pages give every event of ord:1, the new ones too, '
              . 'once each (' . scalar(@$want) . ')');

    # where the last page left off, the next write of the reference
    my $end = last_seq($n);
    $r = $n->get("/v1/events?reference=$REF&after=$end");
    is_deeply($r->{json}, { events => [], last_seq => $end },
              'from the log\'s end: nothing, last_seq the end');
    $n->adjust('I-3', 'w', { delta => 1, reference => 'ord:7' });
    $n->adjust('I-3', 'w', { delta => 1, reference => $REF });
    $r = $n->get("/v1/events?reference=$REF&after=$end");
    is_deeply([ map { [ $_->{seq}, $_->{data}{reference} ] }
                @{ ($r->{json} // {})->{events} // [] } ],
              [ [ $end + 2, $REF ] ], '... then the new event of ord:1 alone');

    # references with characters a query must encode
    for my $ref ('a&b=c+d%25/?#:;', '"x"', 'p+q', 'x' x 255, '~!$\'()*,[]{}|^`@') {
        w($n->adjust('I-3', 'w', { delta => 1, reference => $ref }), 200,
          "an adjustment of reference $ref");
        my $r = $n->get('/v1/events?reference=' . esc($ref));
        is_deeply([ map { $_->{data}{reference} }
                    @{ ($r->{json} // {})->{events} // [] } ], [ $ref ],
                  "reference $ref, percent-encoded: its event");
    }
    $r = $n->get('/v1/events?reference=p+q');
    is(scalar @{ ($r->{json} // {})->{events} // [] }, 1,
       'reference=p+q: "+" is a plus, not a space');

    my $seq = last_seq($n);
    for my $bad ([ 'a%20b', 'a space' ], [ 'x' x 256, '256 characters' ],
                 [ 'caf%C3%A9', 'not ASCII' ], [ '', 'empty' ],
                 [ 'a%01', 'a control character' ], [ 'a%7F', 'DEL' ],
                 [ 'a%09b', 'a tab' ])
    {
        problem_ok($n->get("/v1/events?reference=$bad->[0]"), 400,
                   'invalid-request', "a reference with $bad->[1]: 400",
                   field => 'reference');
    }
    problem_ok($n->get("/v1/events?reference=$REF&wait=1"), 400,
               'invalid-request', 'wait with a reference: 400',
               field => 'wait');
    problem_ok($n->get("/v1/events?reference=$REF&limit=0"), 400,
               'invalid-request', 'limit 0: 400', field => 'limit');
    problem_ok($n->get("/v1/events?reference=$REF&limit=1001"), 400,
               'invalid-request', 'limit 1001: 400', field => 'limit');
    problem_ok($n->get("/v1/events?reference=$REF&after=-1"), 400,
               'invalid-request', 'after -1: 400', field => 'after');
    problem_ok($n->get("/v1/events?reference=$REF&after=x"), 400,
               'invalid-request', 'after x: 400', field => 'after');
    is(last_seq($n), $seq, 'the reads wrote nothing');

    # an expiry carries its reservation's reference
    my $res = w($n->reserve('I-2', 'w', { quantity => 1, ttl_seconds => 1,
                                          reference => 'ord:exp' }),
                201, 'a reservation of 1 s');
    my $state = '';
    for (1 .. 300) {
        $state = ($n->get("/v1/reservations/$res->{id}")->{json} // {})->{state}
                 // '';
        last if $state eq 'expired';
        sleep 0.05;
    }
    is($state, 'expired', '... it expires (within 15 s)');
    $r = $n->get('/v1/events?reference=ord:exp');
    is_deeply([ map { $_->{type} } @{ ($r->{json} // {})->{events} // [] } ],
              [ qw(StockReserved ReservationExpired) ],
              '... its reference finds StockReserved and ReservationExpired');
    is_deeply(($r->{json} // {})->{events}, ref_events($n, 'ord:exp'),
              '... as the feed has them');
}

# ==========================================================================
# GET /v1/inventory?changed_after=
# ==========================================================================

# all_items($n): every known item as GET answers it, by "SKU/LOC"
sub all_items {
    my ($n) = @_;
    my @k = sort keys %KNOWN;
    my %all;
    while (my @part = splice @k, 0, 500) {
        my $r = $n->req(POST => '/v1/inventory/query', json => { items => [
            map { my ($s, $l) = split m{/}; { sku => $s, location => $l } }
            @part ] });
        die "query: " . show($r) unless $r->{status} == 200;
        $all{"$_->{sku}/$_->{location}"} = $_ for @{ $r->{json}{items} };
    }
    return \%all;
}

# since($n, $seq): the known items whose latest event is after $seq, by seq
sub since {
    my ($n, $seq) = @_;
    my $all = all_items($n);
    return [ sort { $a->{seq} <=> $b->{seq} }
             grep { $_->{seq} > $seq } values %$all ];
}

# changes_pages($n, $after, $limit, $between): pages from $after, going on
# from next_changed_after while it is not null; $between->() between
# pages.  Returns (\@pages, \@problems, $cursor): the items of each page;
# pages that break the contract (not 200, more than limit, members,
# an item twice in a page, seqs not growing, next_changed_after not the
# last item's seq, or set on a page that is not full); the cursor a
# client keeps: the last item's seq (or $after)
sub changes_pages {
    my ($n, $after, $limit, $between) = @_;
    my (@pages, @p);
    for (1 .. 10000) {
        my $r = $n->get("/v1/inventory?changed_after=$after&limit=$limit");
        my $j = $r->{json};
        if ($r->{status} != 200 || ref $j ne 'HASH'
            || ref $j->{items} ne 'ARRAY')
        {
            push @p, "page after $after: " . show($r);
            last;
        }
        my @k = grep { !/^(?:items|next_changed_after)\z/ } sort keys %$j;
        push @p, "page after $after has members @k" if @k;
        push @p, "page after $after has no next_changed_after"
            unless exists $j->{next_changed_after};
        my $page = $j->{items};
        push @pages, $page;
        push @p, "page after $after: " . @$page . " items, limit $limit"
            if @$page > $limit;
        my (%in, $prev);
        $prev = $after;
        for my $it (@$page) {
            my @ip = item_problems($it);
            push @p, "page after $after: @ip" if @ip;
            next if @ip;
            my $key = "$it->{sku}/$it->{location}";
            push @p, "page after $after: $key twice" if $in{$key}++;
            push @p, "page after $after: $key seq $it->{seq} after $prev"
                unless $it->{seq} > $prev;
            $prev = $it->{seq};
        }
        my $next = $j->{next_changed_after};
        if (defined $next) {
            push @p, "page after $after: next_changed_after $next on a "
                     . 'page that is not full'
                unless @$page == $limit;
            push @p, "page after $after: next_changed_after $next is not "
                     . "the last item's seq $prev"
                unless $next == $prev;
            $after = $next;
            $between->() if $between;
            next;
        }
        return (\@pages, \@p, $prev);
    }
    return (\@pages, \@p, $after);
}

sub keys_of { [ map { "$_->{sku}/$_->{location}" } @_ ] }

{
    my $n = $P;
    # more items: 120 of them, in one batch
    w($n->batch({ changes => [ map { change(count => sprintf('M-%03d', $_),
                                            'w', { on_hand => $_ }) }
                               1 .. 120 ] }), 200, '120 more items');
    my $want = since($n, 0);
    my $N = @$want;
    is($N, scalar keys %KNOWN, "the store's $N items");

    my $r = $n->get('/v1/inventory');
    is($r->{status}, 200, 'GET /v1/inventory: 200');
    is_deeply(($r->{json} // {})->{items}, [ @$want[0 .. 99] ],
              '... the first 100 items by their latest seq (changed_after 0, '
              . 'limit 100)');
    is(($r->{json} // {})->{next_changed_after}, $want->[99]{seq},
       '... next_changed_after the 100th\'s seq');
    is(header($r, 'inventory-seq'), last_seq($n), '... Inventory-Seq');

    for my $limit (1, 7, $N - 1, $N, $N + 1, 1000) {
        my ($pages, $p, $cursor) = changes_pages($n, 0, $limit);
        is_deeply($p, [], "limit $limit: every page keeps the contract");
        is_deeply([ map { @$_ } @$pages ], $want,
                  "limit $limit: the pages give each item once, as GET "
                  . 'has it, by seq');
        is(scalar @$pages, int(($N + $limit - 1) / $limit),
           "limit $limit: " . int(($N + $limit - 1) / $limit) . ' page(s), '
           . 'the last with next_changed_after null');
        is($cursor, $want->[-1]{seq}, "limit $limit: ... ending at the last "
           . 'item\'s seq');
    }
    for my $k (0, 5, 60, $N - 2, $N - 1) {
        my $s = $want->[$k]{seq};
        my ($pages, $p) = changes_pages($n, $s, 1000);
        is_deeply(keys_of(map { @$_ } @$pages),
                  keys_of(@$want[$k + 1 .. $#$want]),
                  "changed_after the seq of the item at $k: the items after it");
        ($pages) = changes_pages($n, $s - 1, 1000);
        is_deeply(keys_of(map { @$_ } @$pages), keys_of(@$want[$k .. $#$want]),
                  "... after its seq - 1: it and the items after it");
    }
    for my $s (last_seq($n), last_seq($n) + 1, 9007199254740991) {
        is_deeply($n->get("/v1/inventory?changed_after=$s")->{json},
                  { items => [], next_changed_after => undef },
                  "changed_after $s: no items, next_changed_after null");
    }
    $r = $n->req(HEAD => '/v1/inventory?changed_after=0');
    is($r->{status}, 200, 'HEAD: 200');
    is($r->{body}, '', '... no body');

    # a batch changing an item several times: once, at its latest seq
    my $b = last_seq($n);
    w($n->batch({ changes => [ change(adjust => 'M-001', 'w', { delta => 1 }),
                               change(adjust => 'M-002', 'w', { delta => 1 }),
                               change(adjust => 'M-001', 'w', { delta => 1 }) ] }),
      200, 'a batch changing M-001 twice');
    is_deeply(keys_of(@{ $n->get("/v1/inventory?changed_after=$b")->{json}{items} }),
              [ 'M-002/w', 'M-001/w' ],
              '... changed_after: M-002 then M-001, each once');
    # a refused batch, a refused write, reads: no change
    my $before = $n->get("/v1/inventory?changed_after=0&limit=1000")->{body};
    is($n->batch({ changes => [ change(adjust => 'M-003', 'w', { delta => 1 }),
                                change(adjust => 'M-004', 'w', { delta => -99 }) ] })
           ->{status}, 409, 'a batch refused');
    is($n->adjust('M-005', 'w', { delta => -99 })->{status}, 409,
       'an adjustment refused');
    is($n->get("/v1/inventory?changed_after=0&limit=1000")->{body}, $before,
       '... the changes unchanged');
    # a transfer: both sides; a reservation: its item
    $b = last_seq($n);
    w($n->transfer({ sku => 'M-010', from => 'w', to => 'x', quantity => 1 }),
      200, 'a transfer to a new location');
    known('M-010', 'x');
    w($n->reserve('M-011', 'w', { quantity => 1 }), 201, 'a reservation');
    is_deeply(keys_of(@{ $n->get("/v1/inventory?changed_after=$b")->{json}{items} }),
              [ 'M-010/w', 'M-010/x', 'M-011/w' ],
              '... changed_after: both sides of the transfer, the reserved item');

    for my $bad ([ 'limit=0', 'limit' ], [ 'limit=1001', 'limit' ],
                 [ 'limit=-1', 'limit' ], [ 'limit=x', 'limit' ],
                 [ 'limit=1.5', 'limit' ], [ 'limit=', 'limit' ],
                 [ 'changed_after=-1', 'changed_after' ],
                 [ 'changed_after=x', 'changed_after' ],
                 [ 'changed_after=1e3', 'changed_after' ],
                 [ 'changed_after=9007199254740992', 'changed_after' ],
                 [ 'changed_after=', 'changed_after' ]) {
        problem_ok($n->get("/v1/inventory?$bad->[0]"), 400, 'invalid-request',
                   "GET /v1/inventory?$bad->[0]: 400", field => $bad->[1]);
    }
    problem_ok($n->req(POST => '/v1/inventory', json => {}), 405,
               'method-not-allowed', 'POST /v1/inventory: 405',
               allow => [qw(GET HEAD)]);
}

# --------------------------------------------------------------------------
# paging while items change: the client's contract

# a random write between pages, on the G items (some already seen, some
# not) and new ones; returns nothing
my $NEWN = 0;
sub random_change {
    my ($n, @g) = @_;
    my $x = rand 6;
    my $it = $g[rand @g];
    if ($x < 2) {
        $n->adjust($it, 'w', { delta => 1 + int rand 3 });
    } elsif ($x < 3) {
        my $s = sprintf 'GN-%03d', ++$NEWN;
        known($s, 'w');
        $n->put_item($s, 'w', { on_hand => 1 });
    } elsif ($x < 4) {
        $n->batch({ atomic => rand() < 0.5 ? $TRUE : $FALSE, changes => [
            map { change(adjust => $g[rand @g], 'w', { delta => 1 }) } 1 .. 3 ] });
    } elsif ($x < 5) {
        known($it, 'v');
        $n->transfer({ sku => $it, from => 'w', to => 'v', quantity => 1 });
    } else {
        # refused: changes nothing
        $n->batch({ changes => [ change(adjust => $it, 'w', { delta => 1 }),
                                 change(adjust => $it, 'w',
                                        { delta => -1_000_000 }) ] });
    }
}

# follow($n, $after, $limit, $between): a client paging, then asking again
# from its last seq until nothing is new; returns (\@pages, \@problems)
sub follow {
    my ($n, $after, $limit, $between) = @_;
    my ($pages, $p, $cursor) = changes_pages($n, $after, $limit, $between);
    my ($again, $p2) = changes_pages($n, $cursor, $limit);
    return ([ @$pages, @$again ], [ @$p, @$p2 ]);
}

# seen_ok($n, $c0, $pages, $label): what a client saw: every item whose
# latest event is after $c0, in its latest state; an item again only with
# a later version; nothing at or before $c0; seqs growing
sub seen_ok {
    my ($n, $c0, $pages, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my (%seen, @p);
    my $prev = $c0;
    for my $it (map { @$_ } @$pages) {
        my $key = "$it->{sku}/$it->{location}";
        push @p, "$key seq $it->{seq} after $prev" unless $it->{seq} > $prev;
        $prev = $it->{seq};
        push @p, "$key again at version $it->{version}, seen at "
                 . "$seen{$key}{version}"
            if $seen{$key} && $it->{version} <= $seen{$key}{version};
        $seen{$key} = $it;
    }
    my $want = since($n, $c0);
    my %want = map { ("$_->{sku}/$_->{location}" => $_) } @$want;
    for my $k (sort keys %want) {
        push @p, "$k: never seen" unless $seen{$k};
        push @p, "$k: seen at version $seen{$k}{version}, latest "
                 . "$want{$k}{version}"
            if $seen{$k} && !eq_deeply_item($seen{$k}, $want{$k});
    }
    push @p, "$_: seen, but its latest event is not after $c0"
        for grep { !$want{$_} } sort keys %seen;
    ok(!@p, "$label: the client saw each of the " . scalar(@$want)
            . ' items changed since, in its latest state; again only after '
            . 'a change; seqs growing')
        or diag join "\n", @p[0 .. ($#p > 30 ? 30 : $#p)];
    return \%seen;
}

sub eq_deeply_item { encode_json($_[0]) eq encode_json($_[1]) }

{
    my $n = $P;
    my $c0 = last_seq($n);
    my @G = map { sprintf 'G-%03d', $_ } 1 .. 40;
    w($n->batch({ changes => [ map { change(count => $_, 'w',
                                            { on_hand => 100 }) } @G ] }),
      200, '40 items G-001..G-040 in one batch');

    # the case by hand: G-001 seen, then changed; G-030 changed unseen
    my $k = 0;
    my ($pages, $p) = follow($n, $c0, 7, sub {
        return if $k++;
        $n->adjust('G-001', 'w', { delta => 1 });
        $n->adjust('G-030', 'w', { delta => 1 });
    });
    is_deeply($p, [], 'paging by 7 while G-001 (seen) and G-030 (not yet) '
              . 'change: every page keeps the contract');
    my @all = map { @$_ } @$pages;
    is_deeply([ map { "$_->{sku}:$_->{version}" }
                grep { $_->{sku} =~ /^G-0(?:01|30)\z/ } @all ],
              [ 'G-001:1', 'G-001:2', 'G-030:2' ],
              '... G-001 seen at version 1, then again at 2 at the end; '
              . 'G-030 once, at 2, at the end');
    is_deeply(keys_of(@all[-2, -1]), [ 'G-001/w', 'G-030/w' ],
              '... the two changed items last, in the order they changed');
    is(scalar @all, 41, '... 41 items seen: the 40, and G-001 again');
    seen_ok($n, $c0, $pages, 'by hand');

    # random writes between pages, several times
    for my $round (1 .. 4) {
        my $c = $round == 1 ? $c0 : last_seq($n) - 30;
        my $limit = (3, 5, 7, 11)[$round - 1];
        my ($pages, $p) = follow($n, $c, $limit, sub {
            random_change($n, @G) for 1 .. 1 + int rand 3;
        });
        is_deeply($p, [], "round $round (limit $limit, from $c): every page "
                  . 'keeps the contract');
        seen_ok($n, $c, $pages, "round $round");
    }
}

# ==========================================================================
# POST /v1/inventory/query
# ==========================================================================

sub query {
    my ($n, $items, %o) = @_;
    return $n->req(POST => '/v1/inventory/query', json => { items => $items },
                   %o);
}

sub it { { sku => $_[0], location => $_[1] } }

{
    my $n = $P;
    my $seq = last_seq($n);
    my @ask = (it('I-1', 'w'), it('NOPE', 'w'), it('I-2', 'w'),
               it('I-1', 'v'), it('I-1', 'w'), it('I-1', 'zz'),
               it('NOPE', 'w'), it('M-120', 'w'));
    my $r = query($n, \@ask);
    is($r->{status}, 200, 'a query of 8 (duplicates, missing ones): 200');
    like($r->{content_type}, qr{^application/json\b}, '... JSON');
    is(header($r, 'inventory-seq'), $seq, '... Inventory-Seq the last seq');
    my $j = $r->{json} // {};
    is_deeply([ sort keys %$j ], [ qw(items missing) ],
              '... {"items", "missing"}');
    is_deeply($j->{items},
              [ map { $n->get(ipath($_->[0], $_->[1]))->{json} }
                ([ 'I-1', 'w' ], [ 'I-2', 'w' ], [ 'I-1', 'v' ],
                 [ 'I-1', 'w' ], [ 'M-120', 'w' ]) ],
              '... items: those found, in the order asked, I-1/w twice, each '
              . 'as GET has it');
    is_deeply($j->{missing}, [ it('NOPE', 'w'), it('I-1', 'zz'),
                               it('NOPE', 'w') ],
              '... missing: the others in the order asked, NOPE twice');
    $r = query($n, [ it('NOPE', 'a') ]);
    is_deeply($r->{json}, { items => [], missing => [ it('NOPE', 'a') ] },
              'one missing item: 200, items empty');

    # 500 items of 64-character identifiers: a body of about 80 KB
    my @many = map { it(sprintf('%064d', $_), 'l' x 64) } 1 .. 499;
    push @many, it('M-001', 'w');
    my $body = encode_json({ items => \@many });
    cmp_ok(length $body, '>', 65536, '500 items of 64-character names: '
           . length($body) . ' bytes');
    $r = query($n, \@many);
    is($r->{status}, 200, '... 200');
    is_deeply([ map { $_->{sku} } @{ ($r->{json} // {})->{items} // [] } ],
              [ 'M-001' ], '... the one found');
    is(scalar @{ ($r->{json} // {})->{missing} // [] }, 499,
       '... 499 missing');

    my @cases = (
        [ { items => [] }, 'items', 'no items' ],
        [ { items => [ (it('I-1', 'w')) x 501 ] }, 'items', '501 items' ],
        [ {}, 'items', 'no "items"' ],
        [ { items => it('I-1', 'w') }, 'items', 'items an object' ],
        [ { items => 'I-1' }, 'items', 'items a string' ],
        [ { items => undef }, 'items', 'items null' ],
        [ { items => [ it('I-1', 'w'), it('I-2', 'w'), it('I-3', 'w'), 5 ] },
          'items[3]', 'an item a number' ],
        [ { items => [ it('I-1', 'w'), it('I-2', 'w'), it('a b', 'w') ] },
          'items[2].sku', 'a bad sku' ],
        [ { items => [ it('I-1', 'w'), { sku => 'I-1' } ] },
          'items[1].location', 'no location' ],
        [ { items => [ { location => 'w' } ] }, 'items[0].sku', 'no sku' ],
        [ { items => [ it('I-1', 'x' x 65) ] }, 'items[0].location',
          'a location of 65 characters' ],
        [ { items => [ it('I-1', 5) ] }, 'items[0].location',
          'a location a number' ],
        [ { items => [ it('I-1', 'w'), { %{ it('I-1', 'w') }, quantity => 1 } ] },
          'items[1].quantity', 'an unknown member of an item' ],
        [ { items => [ it('I-1', 'w') ], limit => 5 }, 'limit',
          'an unknown member' ],
    );
    for my $c (@cases) {
        problem_ok($n->req(POST => '/v1/inventory/query', json => $c->[0]),
                   400, 'invalid-request', "a query with $c->[2]: 400",
                   field => $c->[1]);
    }
    $r = $n->req(POST => '/v1/inventory/query', json => { items => [
        it('a b', 'w'), it('I-1', 'w'), { sku => 'I-1' }, 7 ] });
    is_deeply([ sort map { $_->{field} } @{ ($r->{json} // {})->{errors} // [] } ],
              [ sort qw(items[0].sku items[2].location items[3]) ],
              'one 400 names every bad item');
    for my $raw ([ '{"items":[{"sku":"I-1","location":"w"}]} x', 'trailing data' ],
                 [ '{"items":[', 'truncated' ], [ '', 'empty' ],
                 [ '[{"sku":"I-1","location":"w"}]', 'an array' ]) {
        problem_ok($n->req(POST => '/v1/inventory/query', body => $raw->[0],
                           headers => { 'Content-Type' => 'application/json' }),
                   400, 'invalid-request', "a body $raw->[1]: 400",
                   field => 'body');
    }
    my $big = encode_json({ items => [ it('I-1', 'w') ] });
    $big =~ s/\]\}$/(' ' x (512 * 1024)) . ']}'/e;
    problem_ok($n->req(POST => '/v1/inventory/query', body => $big,
                       headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', 'a body over 512 KiB: 400',
               field => 'body');
    problem_ok($n->req(POST => '/v1/inventory/query',
                       body => encode_json({ items => [ it('I-1', 'w') ] }),
                       headers => { 'Content-Type' => 'text/plain' }),
               415, 'unsupported-media-type', 'Content-Type text/plain: 415');
    problem_ok($n->req(POST => '/v1/inventory/query', raw => 1,
                       body => encode_json({ items => [ it('I-1', 'w') ] })),
               415, 'unsupported-media-type', 'no Content-Type: 415');
    is(last_seq($n), $seq, 'the queries appended nothing');

    # Inventory-Min-Seq, as on every read
    $r = query($n, [ it('I-1', 'w') ],
               headers => { 'Inventory-Min-Seq' => $seq });
    is($r->{status}, 200, 'a query with Inventory-Min-Seq of the last seq: 200');
    problem_ok(query($n, [ it('I-1', 'w') ],
                     headers => { 'Inventory-Min-Seq' => $seq + 1000 }),
               503, 'replica-behind', 'a query with Inventory-Min-Seq '
               . 'beyond the primary\'s last seq: 503 replica-behind');
    problem_ok(query($n, [ it('I-1', 'w') ],
                     headers => { 'Inventory-Min-Seq' => 'x' }),
               400, 'invalid-request', 'a query with Inventory-Min-Seq x: '
               . '400', field => 'Inventory-Min-Seq');

    # GET /v1/inventory/query: the SKU "query"
    problem_ok($n->get('/v1/inventory/query'), 404, 'not-found',
               'GET /v1/inventory/query with no SKU "query": 404');
    known('query', 'w1'); known('query', 'w2');
    w($n->put_item('query', 'w1', { on_hand => 3 }), 201, 'SKU query at w1');
    w($n->put_item('query', 'w2', { on_hand => 4 }), 201, 'SKU query at w2');
    $r = $n->get('/v1/inventory/query');
    is($r->{status}, 200, 'GET /v1/inventory/query: 200');
    is_deeply([ @{ $r->{json} // {} }{qw(sku on_hand available)},
                map { $_->{location} } @{ ($r->{json} // {})->{locations} // [] } ],
              [ 'query', 7, 7, 'w1', 'w2' ], '... the SKU "query"\'s totals '
              . 'and locations');
    is($n->req(HEAD => '/v1/inventory/query')->{status}, 200, 'HEAD: 200');
    $r = query($n, [ it('query', 'w2') ]);
    is_deeply([ map { $_->{on_hand} } @{ ($r->{json} // {})->{items} // [] } ],
              [ 4 ], 'POST /v1/inventory/query is still the query');
    $r = $n->req(DELETE => '/v1/inventory/query');
    problem_ok($r, 405, 'method-not-allowed',
               'DELETE /v1/inventory/query: 405', allow => [qw(GET HEAD)]);
    like(header($r, 'allow') // '', qr/\bPOST\b/,
         '... its Allow names POST too');
}

# ==========================================================================
# a follower
# ==========================================================================

my $F = InvTest->start(http_extra => 'inventory_follow '
                                     . $P->url('/replication/') . ' wait=3s;');

# same_ok($label, [$method, $path, %opt], ...): each request answers the
# same status and body on P and on F
sub same_ok {
    my ($label, @reqs) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    for my $q (@reqs) {
        my ($m, $path, %o) = @$q;
        my $a = $P->req($m, $path, %o);
        my $b = $F->req($m, $path, %o);
        push @p, "$m $path: $a->{status} on P" unless $a->{status} == 200;
        push @p, "$m $path: P $a->{status}, F $b->{status}\n"
                 . show($a) . "\n" . show($b)
            unless $a->{status} == $b->{status} && $a->{body} eq $b->{body};
    }
    ok(!@p, "$label: " . scalar(@reqs) . ' reads answer the same bytes on '
            . 'the follower')
        or diag join "\n", @p[0 .. ($#p > 5 ? 5 : $#p)];
}

# the three reads, paged as a client pages
sub reads {
    my @q;
    for my $ref ($REF, 'ord:3', 'b:1', 'b:2') {
        push @q, [ GET => '/v1/events?reference=' . esc($ref) . '&limit=1000' ];
        push @q, map { [ GET => '/v1/events?reference=' . esc($ref)
                                . "&after=$_&limit=3" ] } 0, 10, 50, 200;
    }
    push @q, map { [ GET => "/v1/inventory?changed_after=$_&limit=1000" ] }
             0, 10, 100, 200, last_seq($P) - 5;
    my $c = 0;
    for (1 .. 100) {
        my $r = $P->get("/v1/inventory?changed_after=$c&limit=17");
        push @q, [ GET => "/v1/inventory?changed_after=$c&limit=17" ];
        $c = ($r->{json} // {})->{next_changed_after} // last;
    }
    my @k = sort keys %KNOWN;
    push @q, [ POST => '/v1/inventory/query', json => { items => [
        map { my ($s, $l) = split m{/}; it($s, $l) } @k[0 .. ($#k > 499 ? 499 : $#k)] ] } ];
    push @q, [ POST => '/v1/inventory/query', json => { items => [
        it('I-1', 'w'), it('NOPE', 'x'), it('I-1', 'w') ] } ];
    push @q, [ GET => '/v1/inventory/query' ];
    return @q;
}

ok(wait_applied($F, last_seq($P), 30), 'the follower catches up (from a '
   . 'snapshot)');
same_ok('caught up', reads());

# batches while it follows
{
    my @B = map { sprintf 'FB-%02d', $_ } 1 .. 20;
    my $r = $P->batch({ reference => 'b:1', changes => [
        (map { change(count => $_, 'w', { on_hand => 10, min_level => 3 }) } @B),
        change(adjust => 'I-1', 'w', { delta => 2 }),
        change(adjust => $B[0], 'w', { delta => -8 }) ] });
    is($r->{status}, 200, 'an atomic batch on the primary');
    ok(wait_applied($F, last_seq($P), 30), '... the follower applies it');
    my @paths = map { ipath(split m{/}) } sort keys %KNOWN;
    is_deeply(items_snapshot($F, @paths), items_snapshot($P, @paths),
              '... every item equal on both');
    same_ok('after an atomic batch', reads());

    $r = $P->batch({ atomic => $FALSE, reference => 'b:2', changes => [
        (map { change(adjust => $_, 'w', { delta => -5 }) } @B),
        change(adjust => 'NOPE-F', 'w', { delta => -1 }),
        change(move => $B[1], 'w', { from => 'available', to => 'damaged',
                                     quantity => 2, if_version => 99 }) ] });
    is($r->{status}, 200, 'a batch not atomic on the primary');
    is_deeply([ map { $_->{status} } @{ ($r->{json} // {})->{results} // [] } ],
              [ 409, (200) x 19, 404, 412 ],
              '... FB-01 (2 left) refused, the others applied, 404, 412');
    ok(wait_applied($F, last_seq($P), 30), '... the follower applies it');
    is_deeply(items_snapshot($F, @paths), items_snapshot($P, @paths),
              '... every item equal on both');

    my $seq = last_seq($P);
    $r = $P->batch({ reference => 'b:2', changes => [
        change(count => 'FB-NEW', 'w', { on_hand => 1 }),
        change(adjust => $B[2], 'w', { delta => -100 }) ] });
    is($r->{status}, 409, 'an atomic batch refused on the primary');
    $r = $P->adjust($B[3], 'w', { delta => 1, reference => 'b:2' });
    is(($r->{json} // {})->{seq}, $seq + 1, '... the next write takes the '
       . 'next seq');
    ok(wait_applied($F, $seq + 1, 30), '... the follower applies it');
    is($F->get(ipath('FB-NEW', 'w'))->{status}, 404,
       '... FB-NEW exists on neither');
    is_deeply(items_snapshot($F, @paths), items_snapshot($P, @paths),
              '... every item equal on both');
    same_ok('after batches not atomic and refused', reads());

    my $before = items_snapshot($P, @paths);
    $r = $F->batch({ changes => [ change(adjust => 'I-1', 'w',
                                         { delta => 1 }) ] });
    is($r->{status}, 503, 'a batch sent to the follower: 503');
    is(($r->{json} // {})->{code}, 'not-primary', '... not-primary');
    is(last_seq($F), $seq + 1, '... nothing written there');
    unchanged($P, $before, '... nor on the primary');
    problem_ok($F->req(POST => '/v1/inventory/query', body => '{"items":[]}',
                       headers => { 'Content-Type' => 'text/plain' }),
               415, 'unsupported-media-type',
               'a query to the follower without JSON: 415');
}

# concurrent writes on the primary, refused atomic batches among them (in
# the group commit's transactions with other writes): the follower's
# store stays the primary's
{
    my @C = map { "FC-$_" } 1 .. 4;
    for (@C) {
        known($_, 'w');
        w($P->put_item($_, 'w', { on_hand => 1000 }), 201, $_);
    }
    my @out = parallel(4, sub {
        my ($i) = @_;
        srand($SEED + $i);
        my @st;
        for (1 .. 20) {
            my $x = rand;
            my $it = $C[rand @C];
            my $r;
            if ($x < 0.3) {
                $r = $P->adjust($it, 'w', { delta => 1, reference => "c:$i" });
            } else {
                my @ch = map { change(adjust => $C[rand @C], 'w',
                                      { delta => 1 }) } 1 .. 3;
                push @ch, change(adjust => $it, 'w', { delta => -100000 })
                    if $x < 0.7;
                $r = $P->batch({ atomic => $x < 0.85 ? $TRUE : $FALSE,
                                 reference => "c:$i", changes => \@ch });
            }
            push @st, $r->{status};
        }
        return join ',', @st;
    });
    my %st;
    $st{$_}++ for map { split /,/ } @out;
    ok(!grep({ !/^(?:200|409)\z/ } keys %st),
       'concurrent writes and batches on the primary: 200 or 409 (refused '
       . 'atomic batches): ' . join(' ', map { "$_ x $st{$_}" } sort keys %st));
    my ($ev, $p) = feed_pages($P, 0, 1000);
    is_deeply($p, [], '... the primary\'s feed has no gap');
    ok(wait_applied($F, last_seq($P), 30), '... the follower applies it all');
    same_ok('after concurrent batches', reads(),
            map { [ GET => "/v1/events?reference=c:$_&limit=1000" ] } 0 .. 3);
}

same_store_ok([ $P->datadir, $F->datadir ], 'the primary and its follower');

$F->stop;
$P->stop;

done_testing;
