# Batches: POST /v1/batch {"changes":[...], "atomic"?, "reason"?,
# "reference"?}, 1..250 counts, adjustments and moves.
#
# * Atomic success: 200 {"results":[{"status","item"}]} in request order;
#   each change does what its own route does (the same changes sent
#   through PUT, adjustments and moves on twin items give the same
#   statuses, items and events); one transaction: the events' seqs follow
#   one another and share one time, Inventory-Seq is the last; an item
#   changed several times sees its earlier changes.
# * Refused whole (atomic): 250 changes with one, then three bad ones of
#   different kinds: the status of the first refused change's kind,
#   "errors" naming each refused change by index, nothing written (items,
#   last_seq; nor the items it would create, the low-stock list, the
#   changes index, its reference) and the next write takes the next seq.
#   "atomic": false applies the others, each result its item or its
#   problem; a later change of an item sees it as the refused ones left
#   it.
# * if_version per change; the batch's reason and reference (and the
#   actor) in every change's events unless the change has its own;
#   GET /v1/events?reference= finds them.
# * Idempotency-Key over the whole batch: replayed, refused replayed,
#   another batch with the key 422, a 400 not stored.
# * Validation: every 400 names "changes[i].field", nothing written; 415;
#   405; a body over 512 KiB; the largest batch (250 changes with
#   64-character identifiers, 256-byte reasons and 255-character
#   references) accepted.
# * Concurrent batches (refused ones among them) and single writes: no
#   gap in the feed, each batch's seqs one run, every unit accounted for.
# * inventory-admin verify.
use strict;
use warnings;
use Test::More;
use InvTest qw(problem_ok item_problems json_type show header
               items_snapshot unchanged ipath item_events feed_pages
               last_seq replay_ok fresh_ok idem_key parallel encode_json
               decode_json verify_ok);

my $TRUE = JSON::PP::true;
my $FALSE = JSON::PP::false;

my $n = InvTest->start(location_extra => 'inventory_actor $http_x_actor;');
my %ACTOR = ('X-Actor' => 'tester');

# --------------------------------------------------------------------------
# helpers

sub batch { $n->batch(@_) }

# change($op, $sku, $location, \%fields): one change of a batch
sub change {
    my ($op, $sku, $loc, $f) = @_;
    return { op => $op, sku => $sku, location => $loc, %{ $f // {} } };
}

# route($op, $sku, $location, \%body, %opt): the same change through its
# own route
sub route {
    my ($op, $sku, $loc, $body, %o) = @_;
    return $n->put_item($sku, $loc, $body, %o) if $op eq 'count';
    return $n->adjust($sku, $loc, $body, %o) if $op eq 'adjust';
    return $n->req(POST => ipath($sku, $loc) . '/moves', json => $body, %o);
}

my %PROBLEM_MEMBERS = map { $_ => 1 }
    qw(type title status detail code available current_version);

# problem_problems($p, $status, $code, %opt): a problem object inside a
# batch's results: type, title, status, detail, code; available for
# insufficient-stock (== $opt{available} if given); current_version when
# $opt{current_version} is given (undef: must be absent)
sub problem_problems {
    my ($p, $status, $code, %o) = @_;
    return ('problem is not an object') unless ref $p eq 'HASH';
    my @p;
    for my $m (qw(type title detail code)) {
        my $t = json_type($p->{$m});
        push @p, "problem.$m is $t, expected string" if $t ne 'string';
    }
    return @p if @p;
    push @p, "problem.type is $p->{type}"
        unless $p->{type} eq "urn:inventory:problem:$code";
    push @p, "problem.code is $p->{code}, expected $code"
        unless $p->{code} eq $code;
    push @p, 'problem.status is ' . ($p->{status} // 'null')
             . ", expected $status"
        unless json_type($p->{status}) eq 'number' && $p->{status} == $status;
    push @p, 'problem.detail is empty' unless length $p->{detail};
    my @x = grep { !$PROBLEM_MEMBERS{$_} } sort keys %$p;
    push @p, "problem has unexpected members: @x" if @x;
    if ($code eq 'insufficient-stock') {
        if (json_type($p->{available}) ne 'number') {
            push @p, 'insufficient-stock without a numeric available';
        } elsif (defined $o{available} && $p->{available} != $o{available}) {
            push @p, "available is $p->{available}, expected $o{available}";
        }
    }
    if (exists $o{current_version}) {
        my $g = $p->{current_version};
        my $e = $o{current_version};
        push @p, 'current_version is ' . ($g // 'absent') . ', expected '
                 . ($e // 'absent')
            unless (defined $e ? defined $g && $g == $e : !exists $p->{current_version});
    }
    return @p;
}

# results_ok($r, \@expect, $name): 200 {"results":[...]}: one result a
# change, in order; an expectation is [200|201, \%item] or
# [4xx, $code, %problem_opt]
sub results_ok {
    my ($r, $exp, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status is $r->{status}, expected 200" unless $r->{status} == 200;
    push @p, "content-type is '$r->{content_type}'"
        unless $r->{content_type} =~ m{^application/json\b}i;
    push @p, 'an ETag on a batch' if defined $r->{headers}{etag};
    my $j = $r->{json};
    if (ref $j ne 'HASH' || ref $j->{results} ne 'ARRAY') {
        push @p, 'body is not {"results":[...]}';
    } else {
        my @x = grep { $_ ne 'results' } sort keys %$j;
        push @p, "unexpected members: @x" if @x;
        my $res = $j->{results};
        push @p, scalar(@$res) . ' results, expected ' . scalar(@$exp)
            unless @$res == @$exp;
        for my $i (0 .. $#$exp) {
            last if @p > 20;
            my ($st, @rest) = @{ $exp->[$i] };
            my $x = $res->[$i];
            if (ref $x ne 'HASH') { push @p, "results[$i] is not an object"; next }
            push @p, "results[$i].status is " . ($x->{status} // 'null')
                     . ", expected $st"
                unless json_type($x->{status}) eq 'number' && $x->{status} == $st;
            if ($st < 300) {
                my @k = grep { !/^(?:status|item)\z/ } sort keys %$x;
                push @p, "results[$i] has members @k" if @k;
                push @p, map { "results[$i].item: $_" }
                         item_problems($x->{item}, $rest[0]);
            } else {
                my ($code, %o) = @rest;
                my @k = grep { !/^(?:status|problem)\z/ } sort keys %$x;
                push @p, "results[$i] has members @k" if @k;
                push @p, map { "results[$i].problem: $_" }
                         problem_problems($x->{problem}, $st, $code, %o);
            }
        }
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n" . show($r);
    return !@p;
}

# refused_ok($r, $status, $code, [[$index, $code], ...], $name): an atomic
# batch refused: a problem of that status and code whose errors are
# exactly {index, code, detail} of each refused change, in index order
sub refused_ok {
    my ($r, $status, $code, $errs, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status is $r->{status}, expected $status"
        unless $r->{status} == $status;
    push @p, "content-type is '$r->{content_type}'"
        unless $r->{content_type} =~ m{^application/problem\+json\b}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH') {
        push @p, 'body is not an object';
    } else {
        for my $m (qw(type title detail code)) {
            my $t = json_type($j->{$m});
            push @p, "$m is $t, expected string" if $t ne 'string';
        }
        push @p, 'code is ' . ($j->{code} // 'null') . ", expected $code"
            unless ($j->{code} // '') eq $code;
        push @p, 'type is ' . ($j->{type} // 'null')
            unless ($j->{type} // '') eq "urn:inventory:problem:$code";
        push @p, 'member status is ' . ($j->{status} // 'null')
            unless json_type($j->{status}) eq 'number'
                   && $j->{status} == $status;
        push @p, 'a refused batch has results' if exists $j->{results};
        my $e = $j->{errors};
        if (ref $e ne 'ARRAY') {
            push @p, 'no errors array';
        } else {
            my $got = join ' ', map {
                ref $_ eq 'HASH' ? ($_->{index} // 'null') . ':'
                                   . ($_->{code} // 'null') : '?' } @$e;
            my $want = join ' ', map { "$_->[0]:$_->[1]" } @$errs;
            push @p, "errors are ($got), expected ($want)" if $got ne $want;
            for my $x (@$e) {
                next unless ref $x eq 'HASH';
                my @k = grep { !/^(?:index|code|detail)\z/ } sort keys %$x;
                push @p, "errors[] has members @k" if @k;
                push @p, 'errors[].index is not a number'
                    unless json_type($x->{index}) eq 'number';
                push @p, 'errors[].detail is not a non-empty string'
                    unless json_type($x->{detail}) eq 'string'
                           && length $x->{detail};
            }
        }
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n" . show($r);
    return !@p;
}

# events_after($seq): the feed's events after $seq (checked for gaps)
sub events_after {
    my ($seq) = @_;
    my ($ev, $p) = feed_pages($n, $seq, 1000);
    fail('the feed after ' . $seq . ' pages without a gap') if @$p;
    diag join "\n", @$p if @$p;
    return $ev;
}

# no_write_ok($before_seq, $snapshot, $name): nothing written since
sub no_write_ok {
    my ($seq, $snap, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(last_seq($n), $seq, "$name: last_seq unchanged");
    unchanged($n, $snap, "$name: items unchanged") if $snap;
}

# next_seq_ok($before, $name): a following write takes $before + 1
sub next_seq_ok {
    my ($before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $n->adjust('NEXT', 'w', { delta => 1 });
    is(($r->{json} // {})->{seq}, $before + 1,
       "$name: the next write's event is seq " . ($before + 1));
    my $ev = events_after($before);
    is(scalar @$ev, 1, "$name: ... and the feed holds it alone after $before");
}

my @ITEM_FIELDS = qw(on_hand reserved damaged quality_control safety_stock
                     incoming backorder_limit available min_level low_stock
                     version);

# the item without sku, seq and updated_at, for comparing twins
sub item_state {
    my ($it) = @_;
    return undef unless ref $it eq 'HASH';
    return { map { ($_ => (ref $it->{$_} ? ($it->{$_} ? 1 : 0)
                                         : $it->{$_})) } @ITEM_FIELDS };
}

# ==========================================================================
# atomic success, and each change as its route does it
# ==========================================================================

# the changes, on items X1..X3 of a prefix; fields as the route's body
my @OPS = (
    [count  => 'X1', { on_hand => 10, min_level => 4, safety_stock => 1,
                       backorder_limit => 2 }],
    [adjust => 'X1', { delta => 5, state => 'damaged' }],
    [adjust => 'X1', { delta => 20, state => 'incoming' }],
    [move   => 'X1', { from => 'incoming', to => 'available', quantity => 7,
                       reference => 'po:77' }],
    [move   => 'X1', { from => 'available', to => 'quality_control',
                       quantity => 3 }],
    [adjust => 'X2', { delta => 4 }],
    [count  => 'X2', { on_hand => 2, min_level => 5 }],     # turns low
    [adjust => 'X1', { delta => -10, reason => 'shrink' }], # turns low
    [count  => 'X3', { on_hand => 0 }],
    [move   => 'X1', { from => 'damaged', to => 'available', quantity => 2 }],
    [adjust => 'X3', { delta => 1, state => 'quality_control' }],
    [count  => 'X1', { on_hand => 30, reason => 'recount',
                       reference => 'count:9' }],
);

my $before = last_seq($n);
my $r = batch({ reason => 'cycle', reference => 'batch:D',
                changes => [ map { change($_->[0], "D-$_->[1]", 'w', $_->[2]) }
                             @OPS ] },
              headers => \%ACTOR);

my $ev = events_after($before);
my $last = $before + @$ev;

# the twins, one route each, with the reason and reference they inherit
# (the twins' references prefixed with "twin-")
my @twin;
for my $o (@OPS) {
    my %body = %{ $o->[2] };
    $body{reason} //= 'cycle';
    $body{reference} = 'twin-' . ($body{reference} // 'batch:D');
    push @twin, route($o->[0], "R-$o->[1]", 'w', \%body, headers => \%ACTOR);
}

results_ok($r, [ map { [ $_->{status}, {} ] } @twin ],
           'a batch of 12 changes on 3 items: 200, each result the status '
           . 'its route answered (201 for the two items it creates)');
is_deeply([ map { $_->{status} } @twin ],
          [ 201, 200, 200, 200, 200, 201, 200, 200, 201, 200, 200, 200 ],
          '... the routes\' statuses, as expected');
my @res = @{ ($r->{json} // {})->{results} // [] };
is_deeply([ map { item_state($_->{item}) } @res ],
          [ map { item_state($_->{json}) } @twin ],
          'each result\'s item is the item its route answered (every '
          . 'quantity, setting, available, low_stock, version)');
is_deeply([ map { "$_->{item}{sku}/$_->{item}{location}" } @res ],
          [ map { "D-$_->[1]/w" } @OPS ], '... each of its own item');
is_deeply([ map { $_->{item}{version} } grep { $_->{item}{sku} eq 'D-X1' } @res ],
          [ 1, 2, 3, 4, 5, 7, 8, 9 ],
          'X1, changed 8 times in the batch, sees its earlier changes: '
          . 'versions 1..9 (7: the adjustment and its LowStockDetected)');

is(scalar @$ev, 14, 'the batch appended 14 events (12 changes, 2 '
   . 'LowStockDetected)');
is(header($r, 'inventory-seq'), $last, 'Inventory-Seq is the last one');
ok(!grep({ $_->{sku} !~ /^D-/ } @$ev), '... all of the batch\'s items: '
   . 'one transaction, nothing in between')
    or diag explain $ev;
is(scalar(keys %{ { map { $_->{at} => 1 } @$ev } }), 1,
   '... all at one time (one transaction)');
is_deeply([ map { "$_->{sku}:$_->{type}" }
            grep { $_->{type} ne 'LowStockDetected' } @$ev ],
          [ map { "D-$_->[1]:" . { count => 'StockCounted',
                                   adjust => 'StockAdjusted',
                                   move => 'StockMoved' }->{ $_->[0] } } @OPS ],
          '... the changes\' events in request order');
{
    # each result's seq is the seq of its change's last event
    my @want;
    my $k = 0;
    for my $i (0 .. $#res) {
        $k++;    # the change's own event
        $k++ if $ev->[$k] && $ev->[$k]{type} eq 'LowStockDetected'
                && $ev->[$k - 1]{sku} eq $ev->[$k]{sku};
        push @want, $ev->[$k - 1]{seq};
    }
    is_deeply([ map { $_->{item}{seq} } @res ], \@want,
              'each result\'s seq is that of its change\'s last event, in '
              . 'request order');
    is_deeply([ map { $_->{item}{seq} } @res ],
              [ sort { $a <=> $b } map { $_->{item}{seq} } @res ],
              '... increasing');
}
is_deeply($n->get(ipath('D-X1', 'w'))->{json}, $res[-1]{item},
          'GET D-X1 is its last result\'s item');

# the events: the twin's, with the twin's reference for the batch's
for my $x (qw(X1 X2 X3)) {
    my $d = item_events($n, "D-$x", 'w');
    my $t = item_events($n, "R-$x", 'w');
    my $strip = sub {
        my ($e) = @_;
        my %data = %{ $e->{data} };
        $data{reference} =~ s/^twin-// if defined $data{reference};
        return [ $e->{type}, $e->{version}, \%data ];
    };
    is_deeply([ map { $strip->($_) } @$d ], [ map { $strip->($_) } @$t ],
              "$x: the batch's events are those of its routes (type, "
              . 'version, data with reason, reference and actor)');
}
is_deeply(item_events($n, 'D-X1', 'w')->[5]{data},
          { delta => -10, state => 'available', reason => 'shrink',
            reference => 'batch:D', actor => 'tester' },
          'a change with its own reason keeps the batch\'s reference');
is_deeply(item_events($n, 'D-X1', 'w')->[3]{data},
          { from => 'incoming', to => 'available', quantity => 7,
            reason => 'cycle', reference => 'po:77', actor => 'tester' },
          'a change with its own reference keeps the batch\'s reason');
is_deeply(item_events($n, 'D-X1', 'w')->[6]{data},
          { available => 3, min_level => 4, reason => 'shrink',
            reference => 'batch:D', actor => 'tester' },
          'LowStockDetected carries its change\'s reason and reference');

# the batch's reference finds exactly its events that carry it
{
    my $q = $n->get('/v1/events?reference=batch:D&limit=1000');
    is($q->{status}, 200, 'GET /v1/events?reference=batch:D: 200');
    is_deeply([ map { $_->{seq} } @{ ($q->{json} // {})->{events} // [] } ],
              [ map { $_->{seq} } grep { ($_->{data}{reference} // '')
                                         eq 'batch:D' } @$ev ],
              '... exactly the batch\'s events that carry it (12 of 14)');
    is(scalar @{ ($q->{json} // {})->{events} // [] }, 12, '... 12 events');
    $q = $n->get('/v1/events?reference=count:9');
    is_deeply([ map { "$_->{sku}:$_->{type}" } @{ ($q->{json} // {})->{events} // [] } ],
              [ 'D-X1:StockCounted' ], 'a change\'s own reference finds it');
}

# the same item several times, in one run of seqs
{
    $n->put_item('S-1', 'w', { on_hand => 100 });
    my $b = last_seq($n);
    my $r = batch({ changes => [ map { change(adjust => 'S-1', 'w',
                                              { delta => $_ }) } 1 .. 5 ] });
    results_ok($r, [ map { [ 200, { on_hand => 100 + $_ * ($_ + 1) / 2,
                                    version => 1 + $_, seq => $b + $_ } ] }
                     1 .. 5 ],
               'five adjustments of one item: on_hand 101, 103, 106, 110, '
               . '115; versions 2..6; seqs one after another');
}

# an atomic true is the default
{
    my $b = last_seq($n);
    my $r = batch({ atomic => $TRUE, changes => [
        change(count => 'T-1', 'w', { on_hand => 3 }),
        change(adjust => 'T-1', 'w', { delta => -4 }) ] });
    refused_ok($r, 409, 'insufficient-stock', [ [ 1, 'insufficient-stock' ] ],
               '"atomic": true: a change refused by an earlier one\'s '
               . 'result refuses the batch');
    is(header($r, 'inventory-seq'), $b,
       '... Inventory-Seq: the store\'s last seq');
    is($n->get(ipath('T-1', 'w'))->{status}, 404, '... T-1 not created');
    no_write_ok($b, undef, 'atomic true');
}

# a refused batch leaves no trace in the indexes either: the items it
# would create, the low-stock list, the changes index, its reference
{
    my $b = last_seq($n);
    my $low = $n->get('/v1/low-stock?limit=1000')->{body};
    my $changed = $n->get("/v1/inventory?changed_after=0&limit=1000")->{body};
    my $r = batch({ reference => 'batch:refused', changes => [
        change(count => 'N-1', 'w', { on_hand => 1, min_level => 5 }),
        change(adjust => 'D-X1', 'w', { delta => 1 }),
        change(count => 'N-2', 'w', { on_hand => 2 }),
        change(move => 'N-2', 'w', { from => 'damaged', to => 'available',
                                     quantity => 1 }) ] });
    refused_ok($r, 409, 'insufficient-stock', [ [ 3, 'insufficient-stock' ] ],
               'a batch creating two items (one low) refused by its last '
               . 'change: 409');
    is($n->get(ipath($_, 'w'))->{status}, 404, "... $_ not created")
        for qw(N-1 N-2);
    is($n->get('/v1/low-stock?limit=1000')->{body}, $low,
       '... the low-stock list unchanged');
    is($n->get("/v1/inventory?changed_after=0&limit=1000")->{body}, $changed,
       '... the changes index unchanged');
    is_deeply(($n->get('/v1/events?reference=batch:refused')->{json} // {})
                  ->{events}, [], '... its reference finds no event');
    no_write_ok($b, undef, 'refused with new items');
}

# not atomic: a later change of an item sees it as the refused one left it
{
    $n->put_item('NA-1', 'w', { on_hand => 5 });
    my $r = batch({ atomic => $FALSE, changes => [
        change(adjust => 'NA-1', 'w', { delta => 1 }),
        change(adjust => 'NA-1', 'w', { delta => -100 }),
        change(move => 'NA-1', 'w', { from => 'available', to => 'damaged',
                                      quantity => 7 }),
        change(adjust => 'NA-1', 'w', { delta => 2 }),
        change(count => 'NA-1', 'w', { on_hand => 9, if_version => 3 }) ] });
    results_ok($r, [ [ 200, { on_hand => 6, version => 2 } ],
                     [ 409, 'insufficient-stock', available => 6 ],
                     [ 409, 'insufficient-stock', available => 6 ],
                     [ 200, { on_hand => 8, version => 3 } ],
                     [ 200, { on_hand => 9, version => 4 } ] ],
               'not atomic: refused changes in between are skipped, the '
               . 'others apply in order (if_version 3 names the version '
               . 'they left)');
}

# ==========================================================================
# 250 changes, refused whole or applied change by change
# ==========================================================================

my @B = map { sprintf 'B-%03d', $_ } 1 .. 250;
my @BPATH = map { ipath($_, 'w') } @B;
$r = batch({ changes => [ map { change(count => $_, 'w', { on_hand => 50 }) }
                          @B ] });
results_ok($r, [ map { [ 201, { on_hand => 50, version => 1 } ] } @B ],
           '250 counts creating 250 items: 200, 250 results of 201');

# counts($value, %bad): 250 changes: counts to $value but for the indexes
# of %bad (index => change)
sub counts {
    my ($v, %bad) = @_;
    return [ map { $bad{$_} // change(count => $B[$_], 'w', { on_hand => $v }) }
             0 .. 249 ];
}

my %KIND = (
    409 => sub { change(adjust => $B[$_[0]], 'w', { delta => -51 }) },
    412 => sub { change(count => $B[$_[0]], 'w', { on_hand => 7,
                                                   if_version => 9 }) },
    404 => sub { change(adjust => "NONE-$_[0]", 'w', { delta => -1 }) },
);
my %CODE = (409 => 'insufficient-stock', 412 => 'version-mismatch',
            404 => 'not-found');

{
    my $snap = items_snapshot($n, @BPATH);
    my $b = last_seq($n);
    my $r = batch({ changes => counts(60, 137 => $KIND{409}->(137)) });
    refused_ok($r, 409, 'insufficient-stock', [ [ 137, 'insufficient-stock' ] ],
               '249 counts and an adjustment below zero (index 137): 409, '
               . 'errors name index 137');
    no_write_ok($b, $snap, 'one refused of 250');
    next_seq_ok($b, 'one refused of 250');

    for my $order ([ 412, 404, 409 ], [ 404, 409, 412 ], [ 409, 412, 404 ]) {
        my @at = (5, 100, 249);
        my %bad = map { $at[$_] => $KIND{ $order->[$_] }->($at[$_]) } 0 .. 2;
        my $snap = items_snapshot($n, @BPATH, map { ipath("NONE-$_", 'w') } @at);
        my $b = last_seq($n);
        my $r = batch({ changes => counts(61, %bad) });
        refused_ok($r, $order->[0], $CODE{ $order->[0] },
                   [ map { [ $at[$_], $CODE{ $order->[$_] } ] } 0 .. 2 ],
                   "three refused (@$order at 5, 100, 249): $order->[0], the "
                   . 'first\'s kind; errors name all three');
        no_write_ok($b, $snap, "three refused (@$order)");
        next_seq_ok($b, "three refused (@$order)");
    }

    # every change refused, with a kind of each
    $b = last_seq($n);
    $r = batch({ changes => [ map { $KIND{ (409, 412, 404)[$_ % 3] }->($_) }
                              0 .. 249 ] });
    refused_ok($r, 409, 'insufficient-stock',
               [ map { [ $_, $CODE{ (409, 412, 404)[$_ % 3] } ] } 0 .. 249 ],
               'all 250 refused: errors name each of the 250');
    no_write_ok($b, undef, 'all 250 refused');
}

# not atomic: the same three refused, the others applied
{
    my @at = (5, 100, 249);
    my %bad = (5 => $KIND{412}->(5), 100 => $KIND{404}->(100),
               249 => $KIND{409}->(249));
    my $cur = $n->get(ipath($B[5], 'w'))->{json} // {};
    my $last = $n->get(ipath($B[249], 'w'))->{json} // {};
    my $snap = items_snapshot($n, map { ipath($_, 'w') } $B[5], $B[249],
                              'NONE-100');
    my $b = last_seq($n);
    my $r = batch({ atomic => $FALSE, changes => counts(62, %bad) });
    my @exp = map { [ 200, { on_hand => 62, available => 62 } ] } 0 .. 249;
    $exp[5] = [ 412, 'version-mismatch', current_version => $cur->{version} ];
    $exp[100] = [ 404, 'not-found', current_version => undef ];
    $exp[249] = [ 409, 'insufficient-stock', available => $last->{available} ];
    results_ok($r, \@exp, '"atomic": false: 247 applied (200 and the item), '
               . 'index 5 412 with current_version, 100 404, 249 409 with '
               . 'available');
    unchanged($n, $snap, '... the refused ones\' items unchanged, NONE-100 '
              . 'not created');
    my $ev = events_after($b);
    is(scalar @$ev, 247, '... 247 events');
    my @ok = grep { !$bad{$_} } 0 .. 249;
    is_deeply([ map { "$_->{seq} $_->{sku} $_->{type}" } @$ev ],
              [ map { ($b + 1 + $_) . " $B[$ok[$_]] StockCounted" } 0 .. $#ok ],
              '... one after another from ' . ($b + 1) . ', in request order');
    is(header($r, 'inventory-seq'), $b + 247, '... Inventory-Seq the last');
    my $q = $n->req(POST => '/v1/inventory/query',
                    json => { items => [ map { { sku => $_, location => 'w' } }
                                         @B ] });
    my %now = map { ("$_->{sku}" => $_) } @{ ($q->{json} // {})->{items} // [] };
    is_deeply([ map { $now{ $B[$_] } } @ok ],
              [ map { $r->{json}{results}[$_]{item} } @ok ],
              '... each applied item now is its result\'s item');

    # every change refused, not atomic: 200, nothing written
    $b = last_seq($n);
    $r = batch({ atomic => $FALSE,
                 changes => [ map { $KIND{404}->($_) } 0 .. 9 ] });
    results_ok($r, [ map { [ 404, 'not-found' ] } 0 .. 9 ],
               '"atomic": false, every change refused: 200, ten 404s');
    is(header($r, 'inventory-seq'), $b, '... Inventory-Seq: the last seq');
    no_write_ok($b, undef, 'non-atomic, all refused');
}

# ==========================================================================
# if_version
# ==========================================================================

{
    $n->put_item('V-1', 'w', { on_hand => 10 });
    $n->put_item('V-2', 'w', { on_hand => 10 });
    my $snap = items_snapshot($n, map { ipath($_, 'w') } qw(V-1 V-2 V-3));
    my $b = last_seq($n);
    refused_ok(batch({ changes => [
                   change(adjust => 'V-1', 'w', { delta => 1, if_version => 1 }),
                   change(adjust => 'V-2', 'w', { delta => 1, if_version => 2 }) ] }),
               412, 'version-mismatch', [ [ 1, 'version-mismatch' ] ],
               'if_version of another version: 412, naming it');
    refused_ok(batch({ changes => [
                   change(count => 'V-3', 'w', { on_hand => 1, if_version => 1 }) ] }),
               412, 'version-mismatch', [ [ 0, 'version-mismatch' ] ],
               'if_version on an item that does not exist: 412 (not created)');
    refused_ok(batch({ changes => [
                   change(move => 'V-1', 'w', { from => 'available',
                       to => 'damaged', quantity => 1, if_version => 7 }) ] }),
               412, 'version-mismatch', [ [ 0, 'version-mismatch' ] ],
               'if_version on a move: 412');
    refused_ok(batch({ changes => [
                   change(count => 'V-1', 'w', { on_hand => 5, if_version => 1 }),
                   change(adjust => 'V-1', 'w', { delta => 1, if_version => 1 }) ] }),
               412, 'version-mismatch', [ [ 1, 'version-mismatch' ] ],
               'the second change of an item naming the version before the '
               . 'first: 412');
    no_write_ok($b, $snap, 'if_version refused');

    $r = batch({ atomic => $FALSE, changes => [
                 change(count => 'V-3', 'w', { on_hand => 1, if_version => 1 }),
                 change(adjust => 'V-2', 'w', { delta => 1, if_version => 5 }) ] });
    results_ok($r, [ [ 412, 'version-mismatch', current_version => undef ],
                     [ 412, 'version-mismatch', current_version => 1 ] ],
               'not atomic: 412 without current_version for no item, with '
               . 'it (1) for V-2');
    no_write_ok($b, $snap, 'if_version refused, not atomic');

    $r = batch({ changes => [
                 change(count => 'V-1', 'w', { on_hand => 5, if_version => 1 }),
                 change(adjust => 'V-1', 'w', { delta => 1, if_version => 2 }),
                 change(move => 'V-1', 'w', { from => 'available',
                        to => 'damaged', quantity => 1, if_version => 3 }),
                 change(adjust => 'V-2', 'w', { delta => 2 }) ] });
    results_ok($r, [ [ 200, { on_hand => 5, version => 2 } ],
                     [ 200, { on_hand => 6, version => 3 } ],
                     [ 200, { on_hand => 6, damaged => 1, version => 4 } ],
                     [ 200, { on_hand => 12, version => 2 } ] ],
               'each if_version naming the version the earlier changes '
               . 'left: applied');
}

# ==========================================================================
# each refusal as its route gives it
# ==========================================================================

{
    # RF-1: on_hand 12, damaged 2, incoming 3, reserved 12 (backordered:
    # available -2, backorder_limit 5), version 4
    $n->put_item('RF-1', 'w', { on_hand => 10, backorder_limit => 5 });
    $n->adjust('RF-1', 'w', { delta => 2, state => 'damaged' });
    $n->adjust('RF-1', 'w', { delta => 3, state => 'incoming' });
    is($n->reserve('RF-1', 'w', { quantity => 12 })->{status}, 201,
       'setup: RF-1 with 12 reserved, available -2');
    $n->put_item('RF-BIG', 'w', { on_hand => 9007199254740991 });
    my @refused = (
        [ move => 'RF-1', { from => 'available', to => 'damaged',
                            quantity => 1 }, 'a move of more than available' ],
        [ move => 'RF-1', { from => 'damaged', to => 'available',
                            quantity => 3 }, 'a move of more than damaged' ],
        [ count => 'RF-1', { on_hand => 1 }, 'a count below damaged' ],
        [ count => 'RF-1', { on_hand => 12, backorder_limit => 1 },
          'a count lowering backorder_limit below what is reserved' ],
        [ adjust => 'RF-1', { delta => -4, state => 'incoming' },
          'incoming below zero' ],
        [ adjust => 'RF-1', { delta => -4 }, 'on_hand below what is reserved' ],
        [ adjust => 'RF-1', { delta => 1 }, 'if_version of another version',
          1 ],
        [ move => 'RF-NONE', { from => 'damaged', to => 'available',
                               quantity => 1 }, 'a move of no item' ],
        [ adjust => 'RF-NONE', { delta => -1 }, 'a negative adjustment of no '
          . 'item' ],
        [ count => 'RF-NONE', { on_hand => 1 }, 'if_version of no item', 1 ],
        [ adjust => 'RF-BIG', { delta => 1 }, 'on_hand past 2^53 - 1' ],
    );
    my $snap = items_snapshot($n, map { ipath($_, 'w') } qw(RF-1 RF-NONE RF-BIG));
    my $b = last_seq($n);
    my @route = map {
        my ($op, $sku, $body, undef, $v) = @$_;
        route($op, $sku, 'w', $body,
              defined $v ? (headers => { 'If-Match' => qq("$v") }) : ())
    } @refused;
    my $r = batch({ atomic => $FALSE, changes => [ map {
        my ($op, $sku, $body, undef, $v) = @$_;
        change($op, $sku, 'w', { %$body, defined $v ? (if_version => $v) : () })
    } @refused ] });
    my $res = ($r->{json} // {})->{results} // [];
    for my $i (0 .. $#refused) {
        my $want = $route[$i];
        my %o;
        $o{available} = $want->{json}{available}
            if exists(($want->{json} // {})->{available});
        $o{current_version} = ($want->{json} // {})->{current_version}
            if $want->{status} == 412;
        my @p = $want->{status} >= 400
              ? problem_problems(($res->[$i] // {})->{problem}, $want->{status},
                                 ($want->{json} // {})->{code} // '?', %o)
              : ("the route answered $want->{status}");
        push @p, 'status ' . (($res->[$i] // {})->{status} // 'none')
                 . ", the route's $want->{status}"
            unless (($res->[$i] // {})->{status} // 0) == $want->{status};
        my $title = ((($res->[$i] // {})->{problem}) // {})->{title} // '';
        push @p, "title '$title', the route's '$want->{json}{title}'"
            unless $title eq (($want->{json} // {})->{title} // '');
        ok(!@p, "$refused[$i][3]: the result is the route's $want->{status} "
                . (($want->{json} // {})->{code} // '') . ' (status, code, '
                . 'title, available, current_version)')
            or diag join("\n", @p) . "\n" . show($want) . "\n"
                    . encode_json($res->[$i] // {});
    }
    no_write_ok($b, $snap, 'every change refused, by the routes and the batch');
    $r = batch({ changes => [ map {
        my ($op, $sku, $body, undef, $v) = @$_;
        change($op, $sku, 'w', { %$body, defined $v ? (if_version => $v) : () })
    } @refused ] });
    refused_ok($r, $route[0]{status}, ($route[0]{json} // {})->{code} // '?',
               [ map { [ $_, ($route[$_]{json} // {})->{code} // '?' ] }
                 0 .. $#refused ],
               'atomic: refused, each change named with its route\'s code');
    no_write_ok($b, $snap, 'the atomic batch of refusals');
}

# ==========================================================================
# Idempotency-Key
# ==========================================================================

{
    $n->put_item('K-1', 'w', { on_hand => 10 });
    my $body = { reference => 'batch:K', changes => [
        change(adjust => 'K-1', 'w', { delta => 5 }),
        change(count => 'K-2', 'w', { on_hand => 3 }) ] };
    my $first = batch($body, headers => { idem_key('batch-k1') });
    results_ok($first, [ [ 200, { on_hand => 15 } ], [ 201, { on_hand => 3 } ] ],
               'a batch with an Idempotency-Key: applied');
    fresh_ok($first, '... not replayed');
    my $snap = items_snapshot($n, map { ipath($_, 'w') } qw(K-1 K-2));
    my $b = last_seq($n);
    my $again = batch($body, headers => { idem_key('batch-k1') });
    replay_ok($first, $again, 'the same batch with the key: the first answer '
              . 'replayed');
    no_write_ok($b, $snap, 'replayed');
    problem_ok(batch({ %$body, atomic => $FALSE },
                     headers => { idem_key('batch-k1') }),
               422, 'idempotency-key-reused',
               'another batch (atomic false added) with the key: 422');
    problem_ok(batch({ changes => [ change(adjust => 'K-1', 'w',
                                           { delta => 6 }) ] },
                     headers => { idem_key('batch-k1') }),
               422, 'idempotency-key-reused', 'another change with the key: 422');
    problem_ok($n->adjust('K-1', 'w', { delta => 5 },
                          headers => { idem_key('batch-k1') }),
               422, 'idempotency-key-reused',
               'the key on an adjustment route: 422');
    no_write_ok($b, $snap, 'keys reused');

    # a refusal is stored: its retry is refused the same way
    my $bad = { changes => [ change(adjust => 'K-1', 'w', { delta => -20 }),
                             change(adjust => 'K-2', 'w', { delta => 1 }) ] };
    my $r1 = batch($bad, headers => { idem_key('batch-k2') });
    refused_ok($r1, 409, 'insufficient-stock', [ [ 0, 'insufficient-stock' ] ],
               'a refused batch with a key: 409');
    $n->adjust('K-1', 'w', { delta => 100 });
    $snap = items_snapshot($n, map { ipath($_, 'w') } qw(K-1 K-2));
    $b = last_seq($n);
    replay_ok($r1, batch($bad, headers => { idem_key('batch-k2') }),
              '... its retry, though it would now apply, replays the 409');
    no_write_ok($b, $snap, 'refusal replayed');

    # a 400 is not stored
    problem_ok(batch({ changes => [ change(adjust => 'K-1', 'w', { delta => 0 }) ] },
                     headers => { idem_key('batch-k3') }),
               400, 'invalid-request', 'an invalid batch with a key: 400',
               field => 'changes[0].delta');
    results_ok(batch({ changes => [ change(adjust => 'K-1', 'w', { delta => 1 }) ] },
                     headers => { idem_key('batch-k3') }),
               [ [ 200, { on_hand => 116 } ] ],
               '... the key then runs the corrected batch');
}

# ==========================================================================
# validation: 400, 415, 405; nothing written
# ==========================================================================

{
    $n->put_item('Q-1', 'w', { on_hand => 10 });
    my $snap = items_snapshot($n, map { ipath($_, 'w') } qw(Q-1 Q-2));
    my $b = last_seq($n);
    my $ok = change(adjust => 'Q-1', 'w', { delta => 1 });
    my $new = change(count => 'Q-2', 'w', { on_hand => 1 });
    my @cases = (
        [ {}, 'changes', 'no changes' ],
        [ { changes => [] }, 'changes', '0 changes' ],
        [ { changes => [ ($ok) x 251 ] }, 'changes', '251 changes' ],
        [ { changes => $ok }, 'changes', 'changes an object' ],
        [ { changes => 'x' }, 'changes', 'changes a string' ],
        [ { changes => undef }, 'changes', 'changes null' ],
        [ { changes => [ $ok, 5 ] }, 'changes[1]', 'a change a number' ],
        [ { changes => [ $ok, [ $ok ] ] }, 'changes[1]', 'a change an array' ],
        [ { changes => [ $new, { %$ok, op => 'delete' } ] }, 'changes[1].op',
          'an unknown op' ],
        [ { changes => [ { sku => 'Q-1', location => 'w', delta => 1 } ] },
          'changes[0].op', 'no op' ],
        [ { changes => [ { %$ok, op => 1 } ] }, 'changes[0].op',
          'op not a string' ],
        [ { changes => [ { %$ok, op => 'Adjust' } ] }, 'changes[0].op',
          'op in another case' ],
        [ { changes => [ $new, { %$ok, foo => 1 } ] }, 'changes[1].foo',
          'an unknown member' ],
        [ { changes => [ { %$ok, on_hand => 1 } ] }, 'changes[0].on_hand',
          'a member of another op (on_hand in an adjustment)' ],
        [ { changes => [ { %$new, delta => 1 } ] }, 'changes[0].delta',
          'delta in a count' ],
        [ { changes => [ { %$new, quantity => 1 } ] }, 'changes[0].quantity',
          'quantity in a count' ],
        [ { changes => [ { %$ok, ttl_seconds => 1 } ] },
          'changes[0].ttl_seconds', 'a reservation\'s member' ],
        [ { changes => [ $new, change(count => 'Q-1', 'w', {}) ] },
          'changes[1].on_hand', 'a count without on_hand' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => -1 }) ] },
          'changes[0].on_hand', 'on_hand -1' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => '5' }) ] },
          'changes[0].on_hand', 'on_hand a string' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => 1.5 }) ] },
          'changes[0].on_hand', 'on_hand 1.5' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => 1,
                                                       min_level => -1 }) ] },
          'changes[0].min_level', 'min_level -1' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => 1,
                                                 safety_stock => $TRUE }) ] },
          'changes[0].safety_stock', 'safety_stock true' ],
        [ { changes => [ change(count => 'Q-1', 'w', { on_hand => 1,
                                      backorder_limit => 9007199254740992 }) ] },
          'changes[0].backorder_limit', 'backorder_limit 2^53' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 0 }) ] },
          'changes[0].delta', 'delta 0' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', {}) ] },
          'changes[0].delta', 'no delta' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1000000001 }) ] },
          'changes[0].delta', 'delta 10^9 + 1' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1,
                                                        state => 'lost' }) ] },
          'changes[0].state', 'an unknown state' ],
        [ { changes => [ change(move => 'Q-1', 'w', { from => 'available',
                                    to => 'incoming', quantity => 1 }) ] },
          'changes[0].to', 'a move into incoming' ],
        [ { changes => [ change(move => 'Q-1', 'w', { from => 'damaged',
                                    to => 'damaged', quantity => 1 }) ] },
          'changes[0].to', 'a move from = to' ],
        [ { changes => [ change(move => 'Q-1', 'w', { from => 'damaged',
                                    to => 'available', quantity => 0 }) ] },
          'changes[0].quantity', 'a move of 0' ],
        [ { changes => [ change(move => 'Q-1', 'w', { to => 'available',
                                                      quantity => 1 }) ] },
          'changes[0].from', 'a move without from' ],
        [ { changes => [ change(move => 'Q-1', 'w', { from => 'available',
                                    to => 'damaged', quantity => 1,
                                    state => 'damaged' }) ] },
          'changes[0].state', 'state in a move' ],
        [ { changes => [ change(adjust => 'a b', 'w', { delta => 1 }) ] },
          'changes[0].sku', 'a bad sku' ],
        [ { changes => [ change(adjust => 'x' x 65, 'w', { delta => 1 }) ] },
          'changes[0].sku', 'a sku of 65 characters' ],
        [ { changes => [ { op => 'adjust', sku => 'Q-1', delta => 1 } ] },
          'changes[0].location', 'no location' ],
        [ { changes => [ change(adjust => 'Q-1', 5, { delta => 1 }) ] },
          'changes[0].location', 'a location not a string' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1,
                                                        if_version => 0 }) ] },
          'changes[0].if_version', 'if_version 0' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1,
                                                        if_version => '1' }) ] },
          'changes[0].if_version', 'if_version a string' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1,
                                                 reason => 'x' x 257 }) ] },
          'changes[0].reason', 'a change\'s reason of 257 bytes' ],
        [ { changes => [ change(adjust => 'Q-1', 'w', { delta => 1,
                                                 reference => 'two words' }) ] },
          'changes[0].reference', 'a change\'s bad reference' ],
        [ { changes => [ $ok ], atomic => 'yes' }, 'atomic', 'atomic a string' ],
        [ { changes => [ $ok ], atomic => 1 }, 'atomic', 'atomic 1' ],
        [ { changes => [ $ok ], atomic => undef }, 'atomic', 'atomic null' ],
        [ { changes => [ $ok ], reason => 'x' x 257 }, 'reason',
          'the batch\'s reason of 257 bytes' ],
        [ { changes => [ $ok ], reason => 5 }, 'reason',
          'the batch\'s reason a number' ],
        [ { changes => [ $ok ], reference => 'x' x 256 }, 'reference',
          'the batch\'s reference of 256 characters' ],
        [ { changes => [ $ok ], reference => "caf\x{e9}" }, 'reference',
          'the batch\'s reference not ASCII' ],
        [ { changes => [ $ok ], reference => '' }, 'reference',
          'the batch\'s reference empty' ],
        [ { changes => [ $ok ], if_version => 1 }, 'if_version',
          'an unknown member of the batch' ],
        [ { changes => [ $new, $ok ], lines => [] }, 'lines',
          'a cart\'s member on the batch' ],
    );
    for my $c (@cases) {
        my ($body, $field, $what) = @$c;
        problem_ok(batch($body), 400, 'invalid-request', "$what: 400",
                   field => $field);
    }
    no_write_ok($b, $snap, 'the invalid batches');

    # one 400 names every bad change
    my $r = batch({ atomic => 'no', changes => [
        $new, change(adjust => 'Q-1', 'w', { delta => 0 }), $ok,
        { %$ok, op => 'x' }, change(move => 'Q-1', 'bad loc',
                                    { from => 'available', to => 'damaged',
                                      quantity => 1 }) ] });
    problem_ok($r, 400, 'invalid-request', 'several bad changes: 400');
    is_deeply([ sort map { $_->{field} } @{ ($r->{json} // {})->{errors} // [] } ],
              [ sort qw(atomic changes[1].delta changes[3].op
                        changes[4].location) ],
              '... naming each of them (and atomic), not the good ones');

    # a 400 at the last of 250 changes
    problem_ok(batch({ changes => [ (change(count => 'Q-2', 'w',
                                            { on_hand => 1 })) x 249,
                                    change(count => 'Q-2', 'w', {}) ] }),
               400, 'invalid-request', 'a bad 250th change: 400',
               field => 'changes[249].on_hand');

    my @raw = (
        [ '{"changes":[{"op":"count","sku":"Q-2","location":"w","on_hand":1}]} x',
          'trailing data' ],
        [ '{"changes":[{"op":"count","sku":"Q-2","location":"w","on_hand":1}',
          'truncated' ],
        [ '[{"op":"count","sku":"Q-2","location":"w","on_hand":1}]',
          'an array' ],
        [ '', 'empty' ],
    );
    for my $x (@raw) {
        problem_ok($n->req(POST => '/v1/batch', body => $x->[0],
                           headers => { 'Content-Type' => 'application/json' }),
                   400, 'invalid-request', "a body $x->[1]: 400",
                   field => 'body');
    }
    problem_ok($n->req(POST => '/v1/batch', body =>
               '{"changes":[{"op":"count","sku":"Q-2","sku":"Q-3",'
               . '"location":"w","on_hand":1}]}',
               headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', 'a duplicate member in a change: 400');

    # the limit: 512 KiB
    my $big = encode_json({ changes => [ $new ], reason => 'x' })
              =~ s/"x"/'"' . ('x' x (512 * 1024)) . '"'/er;
    problem_ok($n->req(POST => '/v1/batch', body => $big,
                       headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', 'a body over 512 KiB: 400',
               field => 'body');
    my $chunked = join('', map { sprintf("%x\r\n", length $_) . "$_\r\n" }
                           unpack('(a65536)*', $big)) . "0\r\n\r\n";
    problem_ok($n->req(POST => '/v1/batch', raw => 1, body => $chunked,
                       headers => { 'Content-Type' => 'application/json',
                                    'Transfer-Encoding' => 'chunked' }),
               400, 'invalid-request', '... sent chunked: 400',
               field => 'body');
    problem_ok($n->req(POST => '/v1/batch', body => encode_json({ changes => [ $new ] }),
                       headers => { 'Content-Type' => 'text/plain' }),
               415, 'unsupported-media-type', 'Content-Type text/plain: 415');
    problem_ok($n->req(POST => '/v1/batch', body => encode_json({ changes => [ $new ] }),
                       raw => 1),
               415, 'unsupported-media-type', 'no Content-Type: 415');
    problem_ok($n->get('/v1/batch'), 405, 'method-not-allowed',
               'GET /v1/batch: 405', allow => ['POST']);
    problem_ok($n->req(PUT => '/v1/batch', json => { changes => [ $new ] }),
               405, 'method-not-allowed', 'PUT /v1/batch: 405',
               allow => ['POST']);
    is($n->req(POST => '/v1/batch/x', json => { changes => [ $new ] })->{status},
       404, 'POST /v1/batch/x: 404');
    no_write_ok($b, $snap, 'the refused requests');
}

# the largest batch: 250 changes of 64-character identifiers, 256-byte
# reasons, 255-character references (a body of about 190 KB)
{
    my $id = sub { (sprintf '%-64s', "L-$_[0]-") =~ tr/ /x/r };
    my $loc = 'l' x 64;
    my @ch = map { change(count => $id->($_), $loc,
                          { on_hand => $_, min_level => 1000,
                            reason => chr(65 + $_ % 26) x 256,
                            reference => (sprintf '%-255s', "ref:$_") =~ tr/ /r/r }) }
             0 .. 249;
    my $body = encode_json({ changes => \@ch, reason => 'y' x 256,
                             reference => 'z' x 255 });
    cmp_ok(length $body, '>', 150_000, 'the largest batch: ' . length($body)
           . ' bytes');
    my $b = last_seq($n);
    my $r = batch({ changes => \@ch }, headers => { idem_key('batch-big') });
    results_ok($r, [ map { [ 201, { on_hand => $_, low_stock => 1,
                                    version => 2 } ] } 0 .. 249 ],
               '... 200, every count applied (each with its LowStockDetected)');
    is(scalar @{ events_after($b) }, 500, '... 500 events');
    replay_ok($r, batch({ changes => \@ch }, headers => { idem_key('batch-big') }),
              '... replayed whole');
    is(last_seq($n), $b + 500, '... nothing more written');
    my $ev = item_events($n, $id->(249), $loc);
    is_deeply([ map { $_->{data}{reference} } @$ev ],
              [ ($ch[249]{reference}) x 2 ], '... its own references kept');

    # every member a change may have: the most values a batch holds
    my @all = map { change(count => $id->($_), $loc,
                           { on_hand => $_ + 1, min_level => 0,
                             safety_stock => 1, backorder_limit => 2,
                             if_version => 2, reason => $ch[$_]{reason},
                             reference => $ch[$_]{reference} }) } 0 .. 249;
    $b = last_seq($n);
    $r = batch({ changes => \@all, reason => 'y' x 256,
                 reference => 'z' x 255, atomic => $TRUE });
    results_ok($r, [ map { [ 200, { on_hand => $_ + 1, safety_stock => 1,
                                    backorder_limit => 2, version => 3 } ] }
                     0 .. 249 ],
               '250 changes of every member (if_version among them): 200');
    is(last_seq($n), $b + 250, '... 250 events');

    # every one refused, not atomic, each with a long detail
    $b = last_seq($n);
    $r = batch({ atomic => $FALSE, reason => 'y' x 256,
                 reference => 'z' x 255,
                 changes => [ map { change(adjust => $id->($_), 'm' x 64,
                                           { delta => -1 }) } 0 .. 249 ] });
    results_ok($r, [ map { [ 404, 'not-found' ] } 0 .. 249 ],
               '250 changes each 404 with 64-character names: 200, 250 problems');
    is(last_seq($n), $b, '... nothing written');
}

# ==========================================================================
# concurrent batches and single writes
# ==========================================================================

{
    my @C = map { "C-$_" } 1 .. 4;
    $n->put_item($_, 'w', { on_hand => 100000 }) for @C;
    my $b = last_seq($n);
    my @out = parallel(4, sub {
        my ($i) = @_;
        srand($$ ^ time);
        my (%applied, @runs, @bad, $single);
        for my $round (1 .. 25) {
            my $x = rand;
            if ($x < 0.3) {
                my $it = $C[rand @C];
                my $d = 1 + int rand 5;
                my $r = $n->adjust($it, 'w', { delta => $d });
                if ($r->{status} == 200) { $applied{$it} += $d; $single++ }
                else { push @bad, "adjust: $r->{status}" }
                next;
            }
            my $atomic = $x < 0.65;
            my @ch;
            my @d;
            for (1 .. 2 + int rand 5) {
                my $it = $C[rand @C];
                my $d = (1 + int rand 5) * (rand() < 0.3 ? -1 : 1);
                push @ch, change(adjust => $it, 'w', { delta => $d });
                push @d, [ $it, $d ];
            }
            my $refuse = rand() < 0.3;
            if ($refuse) {
                my $k = int rand(@ch + 1);
                splice @ch, $k, 0, change(adjust => $C[0], 'w',
                                          { delta => -10_000_000 });
                splice @d, $k, 0, undef;
            }
            my $r = batch({ atomic => $atomic ? $TRUE : $FALSE,
                            changes => \@ch });
            if ($atomic && $refuse) {
                push @bad, "refused atomic: $r->{status}"
                    unless $r->{status} == 409;
                next;
            }
            if ($r->{status} != 200) { push @bad, "batch: $r->{status}"; next }
            my @seqs;
            for my $k (0 .. $#ch) {
                my $res = $r->{json}{results}[$k];
                if (!defined $d[$k]) {
                    push @bad, "the impossible change: $res->{status}"
                        unless $res->{status} == 409;
                    next;
                }
                if ($res->{status} != 200) {
                    push @bad, "a change: $res->{status}";
                    next;
                }
                $applied{ $d[$k][0] } += $d[$k][1];
                push @seqs, $res->{item}{seq};
            }
            push @runs, [ @seqs ];
        }
        return encode_json({ applied => \%applied, runs => \@runs,
                             bad => \@bad, single => $single // 0 });
    });
    my (%sum, @runs, @bad);
    my $single = 0;
    for my $o (@out) {
        my $j = eval { decode_json($o) } // { bad => [ $o ] };
        $sum{$_} += $j->{applied}{$_} for keys %{ $j->{applied} // {} };
        push @runs, @{ $j->{runs} // [] };
        push @bad, @{ $j->{bad} // [] };
        $single += $j->{single} // 0;
    }
    is_deeply(\@bad, [], 'concurrent batches and adjustments: every answer '
              . 'as expected (refused atomic batches 409, the impossible '
              . 'change alone refused otherwise)');
    my @broken = grep { my $s = $_;
                        grep { $s->[$_] != $s->[0] + $_ } 0 .. $#$s } @runs;
    is_deeply(\@broken, [], 'each batch\'s applied changes have seqs one '
              . 'after another (' . @runs . ' batches)');
    for my $it (@C) {
        is(($n->get(ipath($it, 'w'))->{json} // {})->{on_hand},
           100000 + ($sum{$it} // 0),
           "$it: on_hand is 100000 plus every applied delta");
    }
    my ($ev, $p) = feed_pages($n, 0, 1000);
    is_deeply($p, [], 'the feed from 0 has no gap');
    my $mine = grep { $_->{seq} > $b } @$ev;
    my $changes = $single;
    $changes += @$_ for @runs;
    is($mine, $changes, "the feed holds exactly the applied changes' events "
       . "($changes: nothing of a refused atomic batch)");
}

$n->stop;
verify_ok($n->datadir, undef, 'after the batches');

done_testing;
