#!/usr/bin/perl
# Issue 7, "full disk and full map": the store runs out of room and comes
# back without losing or inventing anything.
#
# 1. A full map (map_size=1m): /v1/health turns 503 at 95 % of the map,
#    before the first 507; writes of every kind answer 507 storage-full and
#    change nothing (no event, the item as it was, an Idempotency-Key not
#    remembered); reads go on with the acknowledged values; write errors
#    are counted; inventory-admin verify passes; a larger map_size by
#    reload brings writes and health back, with every acknowledged write in
#    a gap-free log that replays to the items.  (t/23 covers the 507 and
#    the raise itself; this file adds the data-integrity checks.)
# 2. A full disk (root only): the store on a small tmpfs with a map_size
#    larger than the file system, filled by a filler file, then by the
#    store itself.  ENOSPC answers 503 unavailable (docs/api.md: "the store
#    cannot be read or written"), no worker dies, reads go on, health is
#    503 until the next commit (the "last write failed" flag), write errors
#    are counted; freeing space (deleting the filler, growing the tmpfs)
#    brings everything back with every acknowledged write present.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use JSON::PP ();
use POSIX ();
use InvTest qw(item_ok problem_ok feed_pages admin_run metric_value
               replay_events verify_ok last_seq);

my $T0 = time;
my $REASON = 'r' x 240;
my $CANON = JSON::PP->new->canonical;

sub canon { $CANON->encode($_[0]) }

# --------------------------------------------------------------------------
# the ledger: every write the module acknowledged (2xx), in order

sub ledger { { acks => [], last => {}, sku => {} } }

# a write through $n->req; 200/201 (not replayed) goes into the ledger
sub write_req {
    my ($n, $L, $method, $sku, $loc, $suffix, $json, %o) = @_;
    my $path = "/v1/inventory/$sku/$loc$suffix";
    my $r = $n->req($method => $path, json => $json,
                    headers => $o{headers} // {});
    if (($r->{status} == 200 || $r->{status} == 201)
        && !$r->{headers}{'idempotent-replayed'})
    {
        my $j = $r->{json};
        if (ref $j ne 'HASH' || !defined $j->{version}) {
            fail("a $r->{status} answer to $method $path is an item");
            diag InvTest::show($r);
            return $r;
        }
        my %data = $suffix ? (delta => $json->{delta})
                           : (on_hand => $json->{on_hand});
        push @{ $L->{acks} }, {
            sku => $sku, loc => $loc, version => $j->{version},
            type => $suffix ? 'StockAdjusted' : 'StockCounted',
            data => \%data,
        };
        $L->{last}{"$sku/$loc"} = $j;
        $L->{sku}{$sku} = 1;
    }
    return $r;
}

sub put_item {
    my ($n, $L, $sku, $loc, $on_hand, %o) = @_;
    return write_req($n, $L, PUT => $sku, $loc, '',
                     { on_hand => $on_hand,
                       (defined $o{reason} ? (reason => $o{reason}) : ()) },
                     %o);
}

sub adjust {
    my ($n, $L, $sku, $loc, $delta, %o) = @_;
    return write_req($n, $L, POST => $sku, $loc, '/adjustments',
                     { delta => $delta,
                       (defined $o{reason} ? (reason => $o{reason}) : ()) },
                     %o);
}

# a reservation (kept active): its StockReserved event goes into the
# ledger, the item as it is after it into the last states
sub reserve {
    my ($n, $L, $sku, $loc, $q) = @_;
    my $r = $n->req(POST => "/v1/inventory/$sku/$loc/reservations",
                    json => { quantity => $q, ttl_seconds => 86400,
                              reference => $REASON });
    if ($r->{status} == 201) {
        my $it = $n->req(GET => "/v1/inventory/$sku/$loc")->{json};
        push @{ $L->{acks} }, {
            sku => $sku, loc => $loc, version => $it->{version},
            type => 'StockReserved', data => { quantity => $q },
        };
        $L->{last}{"$sku/$loc"} = $it;
    }
    return $r;
}

# the current item of every ledger key, through the aggregate route
sub current_items {
    my ($n, $L) = @_;
    my (%cur, @p);
    for my $sku (sort keys %{ $L->{sku} }) {
        my $r = $n->req(GET => "/v1/inventory/$sku");
        my $locs = ref $r->{json} eq 'HASH' ? $r->{json}{locations} : undef;
        if ($r->{status} != 200 || ref $locs ne 'ARRAY') {
            push @p, "GET /v1/inventory/$sku: " . InvTest::show($r);
            next;
        }
        for my $it (@$locs) {
            push @p, "$sku/$it->{location} listed twice"
                if $cur{"$sku/$it->{location}"};
            $cur{"$sku/$it->{location}"} = $it;
        }
    }
    return (\%cur, \@p);
}

# reads: every acknowledged item answers 200 with its last acknowledged
# state, and no item exists that was never acknowledged
sub items_ok {
    my ($n, $L, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($cur, $p) = current_items($n, $L);
    my @bad = @$p;
    for my $k (sort keys %{ $L->{last} }) {
        push @bad, "$k: " . (defined $cur->{$k} ? canon($cur->{$k}) : 'absent')
                   . ', acknowledged ' . canon($L->{last}{$k})
            unless defined $cur->{$k}
                   && canon($cur->{$k}) eq canon($L->{last}{$k});
    }
    push @bad, "$_ exists but no write of it was acknowledged"
        for grep { !$L->{last}{$_} } sort keys %$cur;
    ok(!@bad, "$label: reads answer 200 with the acknowledged state of all "
              . scalar(keys %{ $L->{last} }) . ' items')
        or diag join "\n", @bad[0 .. ($#bad > 5 ? 5 : $#bad)];
}

# the log: gap-free from 1, one event per acknowledged write (none for a
# failed one), each acknowledged write's event with its data, and every
# item equal to the replay of its events and to its last acknowledged state
sub ledger_ok {
    my ($n, $L, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $acks = $L->{acks};
    my ($ev, $p) = feed_pages($n, 0, 1000);
    ok(!@$p, "$label: the event log is gap-free from seq 1")
        or diag join "\n", @$p[0 .. ($#$p > 5 ? 5 : $#$p)];
    my $ls = last_seq($n);
    is(scalar @$ev, $ls, "$label: the log holds last_seq ($ls) events");
    is($ls, scalar @$acks, "$label: last_seq is the number of acknowledged "
                           . 'writes (one event each, none for a failed one)');

    my %by = map { ("$_->{sku}/$_->{location}/$_->{version}" => $_) }
             grep { ref $_ eq 'HASH' && defined $_->{version} } @$ev;
    my @missing;
    for my $a (@$acks) {
        my $e = $by{"$a->{sku}/$a->{loc}/$a->{version}"};
        my $ok = $e && $e->{type} eq $a->{type} && ref $e->{data} eq 'HASH'
                 && !grep { ($e->{data}{$_} // 'x') ne $a->{data}{$_} }
                    keys %{ $a->{data} };
        push @missing, "$a->{sku}/$a->{loc} v$a->{version} $a->{type} "
                       . canon($a->{data}) . ': '
                       . ($e ? 'logged as ' . canon($e) : 'not in the log')
            unless $ok;
    }
    ok(!@missing, "$label: all " . scalar(@$acks) . ' acknowledged writes '
                  . 'are in the log with their data')
        or diag join "\n", @missing[0 .. ($#missing > 5 ? 5 : $#missing)];

    my %of;
    push @{ $of{"$_->{sku}/$_->{location}"} }, $_
        for grep { ref $_ eq 'HASH' && defined $_->{sku} } @$ev;
    my ($cur, $cp) = current_items($n, $L);
    my @bad = @$cp;
    for my $k (sort keys %{ $L->{last} }) {
        my ($sku, $loc) = split m{/}, $k, 2;
        my ($st, $rp) = replay_events($of{$k} // [], $sku, $loc);
        push @bad, @$rp;
        my $c = $cur->{$k};
        if (!$c) { push @bad, "$k: not listed"; next }
        for my $f (qw(on_hand reserved min_level version updated_at)) {
            push @bad, "$k: $f is $c->{$f}, the replay gives "
                       . ($st->{$f} // 'null')
                if ($c->{$f} // '') ne ($st->{$f} // '');
        }
        push @bad, "$k: " . canon($c) . ' is not the acknowledged '
                   . canon($L->{last}{$k})
            if canon($c) ne canon($L->{last}{$k});
    }
    ok(!@bad, "$label: every item is the replay of its events and its last "
              . 'acknowledged state')
        or diag join "\n", @bad[0 .. ($#bad > 5 ? 5 : $#bad)];
}

# a problem answer with the exact type URI, nothing leaked
sub storage_problem_ok {
    my ($r, $status, $code, $name, @leak) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = problem_ok($r, $status, $code, $name);
    my $type = ref $r->{json} eq 'HASH' ? $r->{json}{type} // 'null' : 'none';
    $ok &&= is($type, "urn:inventory:problem:$code", "$name: type URI");
    my @l = grep { index($r->{body}, $_) >= 0 } @leak;
    $ok &&= ok($r->{body} !~ /\bmdb|lmdb|MDB_|errno|No space left/i && !@l,
               "$name: the problem leaks no path or LMDB internals")
        or diag $r->{body};
    return $ok;
}

sub errors_total { metric_value($_[0], 'inventory_write_errors_total') // -1 }

# the item as it is now: "200 <canonical JSON>", else the status alone
sub item_now {
    my ($n, $sku, $loc) = @_;
    my $r = $n->req(GET => "/v1/inventory/$sku/$loc");
    return $r->{status} == 200 ? '200 ' . canon($r->{json}) : "$r->{status}";
}

# what item_now must give for a ledger key
sub item_acked {
    my ($L, $sku, $loc) = @_;
    my $was = $L->{last}{"$sku/$loc"};
    return $was ? '200 ' . canon($was) : '404';
}

# --------------------------------------------------------------------------
# 1. a full map

{
    my $SKU = 'F-' . ('s' x 62);
    my $loc = sub { sprintf 'loc-%05d-%s', $_[0], 'l' x 54 };
    my $n = InvTest->start(store_args => 'map_size=1m');
    my $D = $n->datadir;
    my $L = ledger();
    my $map = 1024 * 1024;
    my $err0 = errors_total($n);
    my $full = 0;          # 507 answers seen
    my ($first507, $h503_at, @hbad);
    my $i;

    # PUT new items, every fourth write an adjustment of an earlier one,
    # each followed by a health check, until the first 507
    for ($i = 0; $i < 20000; $i++) {
        my $r = $i % 4 == 3
            ? adjust($n, $L, $SKU, $loc->(int($i / 2)), 1, reason => $REASON)
            : put_item($n, $L, $SKU, $loc->($i), $i + 1, reason => $REASON);
        if ($r->{status} == 507) { $full++; $first507 = $r; last }
        if ($r->{status} != 200 && $r->{status} != 201) {
            fail("write $i before the map was full answered $r->{status}");
            diag InvTest::show($r);
            last;
        }
        my $h = $n->req(GET => '/v1/health');
        if ($h->{status} == 200) {
            my $s = ref $h->{json} eq 'HASH' ? $h->{json}{store} : undef;
            push @hbad, "write $i: health 200 with used "
                        . ($s->{used} // 'null') . " of "
                        . ($s->{map_size} // 'null')
                unless ref $s eq 'HASH' && $s->{map_size} == $map
                       && $s->{used} < 0.95 * $map;
            push @hbad, "write $i: health back to 200 after a 503"
                if defined $h503_at;
        } elsif ($h->{status} == 503
                 && ($h->{json}{code} // '') eq 'unavailable')
        {
            if (!defined $h503_at) {
                $h503_at = $i;
                my $used = metric_value($n, 'inventory_store_used_bytes');
                push @hbad, "write $i: health turned 503 with used "
                            . ($used // 'null') . ", below 95 % of $map"
                    unless defined $used && $used >= 0.95 * $map;
            }
        } else {
            push @hbad, "write $i: health " . InvTest::show($h);
        }
        last if @hbad > 5;
    }
    ok($first507, "writes end in 507 (after " . scalar(@{ $L->{acks} })
                  . ' acknowledged writes)');
    storage_problem_ok($first507 // { status => 0, body => '',
                                      content_type => '' },
                       507, 'storage-full', 'the first 507', $D);
    ok(!@hbad, 'health is 200 below 95 % of the map and 503 unavailable '
               . 'from 95 % on (the high-water mark never goes down)')
        or diag join "\n", @hbad;
    ok(defined $h503_at && $h503_at < $i,
       'health turned 503 before the first 507 (at write '
       . ($h503_at // 'never') . ", the first 507 at write $i)");
    is(last_seq($n), scalar @{ $L->{acks} },
       'the 507 appended no event (last_seq = acknowledged writes)');
    my $failed_loc = $i % 4 == 3 ? undef : $loc->($i);
    my $target = $failed_loc // $loc->(int($i / 2));
    is(item_now($n, $SKU, $target), item_acked($L, $SKU, $target),
       'the item of the write that got 507 is as it was ('
       . ($failed_loc ? 'a new item: 404' : 'adjusted: unchanged') . ')');

    # writes of every kind on existing items: 507 and nothing changed
    # (a write may still fit in pages freed by earlier ones: it is then
    # acknowledged, and the next one is tried)
    my $E = $loc->(0);
    my $probe = sub {
        my ($what, $send) = @_;
        my $r;
        for (1 .. 200) {
            $r = $send->();
            last if $r->{status} != 200 && $r->{status} != 201;
        }
        $full++ if $r->{status} == 507;
        storage_problem_ok($r, 507, 'storage-full', "full map: $what is 507",
                           $D);
        is(item_now($n, $SKU, $E), item_acked($L, $SKU, $E),
           "full map: $what changed nothing in the item (version, "
           . 'quantities, updated_at)');
        is(last_seq($n), scalar @{ $L->{acks} },
           "full map: $what appended no event");
    };
    $probe->('an adjustment of an existing item',
             sub { adjust($n, $L, $SKU, $E, 5, reason => $REASON) });
    $probe->('a PUT of an existing item with a matching If-Match',
             sub {
                 my $v = $L->{last}{"$SKU/$E"}{version};
                 put_item($n, $L, $SKU, $E, 777, reason => $REASON,
                          headers => { 'If-Match' => qq{"$v"} });
             });
    $probe->('a reservation', sub { reserve($n, $L, $SKU, $E, 1) });

    # an Idempotency-Key whose request got 507 is not remembered
    my $K = 'F-KEYED';
    my %kh = ('Idempotency-Key' => 'full-map-key-1');
    my $r1 = put_item($n, $L, $K, 'here', 42, reason => $REASON,
                      headers => \%kh);
    my $r2 = put_item($n, $L, $K, 'here', 42, reason => $REASON,
                      headers => \%kh);
    $full += grep { $_->{status} == 507 } $r1, $r2;
    storage_problem_ok($r1, 507, 'storage-full', 'a keyed PUT is 507', $D);
    storage_problem_ok($r2, 507, 'storage-full',
                       'the same keyed PUT again is 507 once more');
    ok(!$r2->{headers}{'idempotent-replayed'},
       'the repeat is not a replay of the 507');
    problem_ok($n->req(GET => "/v1/inventory/$K/here"), 404, 'not-found',
               'the keyed item does not exist');

    items_ok($n, $L, 'full map');
    problem_ok($n->req(GET => '/v1/health'), 503, 'unavailable',
               'full map: health is 503 unavailable');
    is(errors_total($n) - $err0, $full,
       "full map: inventory_write_errors_total grew by the $full 507s");
    verify_ok($D, scalar @{ $L->{acks} }, 'full map, nginx serving');
    $n->check_log('full map');

    # a larger map by reload
    $n->reconfigure(store_args => 'map_size=4m');
    $n->reload;
    my $h = $n->req(GET => '/v1/health');
    is($h->{status}, 200, 'after the reload with map_size=4m, health is 200')
        or diag InvTest::show($h);
    is(ref $h->{json} eq 'HASH' ? $h->{json}{store}{map_size} : undef,
       4 * $map, 'health reports the new map size');
    is(last_seq($n), scalar @{ $L->{acks} }, 'the reload lost no event');
    my $err1 = errors_total($n);

    if (defined $failed_loc) {
        item_ok(put_item($n, $L, $SKU, $failed_loc, $i + 1, reason => $REASON),
                201, { on_hand => $i + 1, version => 1 },
                'the PUT that got 507 now succeeds');
    }
    my $v = $L->{last}{"$SKU/$E"}{version};
    my $oh = $L->{last}{"$SKU/$E"}{on_hand};
    item_ok(adjust($n, $L, $SKU, $E, 5, reason => $REASON), 200,
            { on_hand => $oh + 5, version => $v + 1 },
            'the adjustment that got 507 now succeeds, once');
    my $k1 = put_item($n, $L, $K, 'here', 42, reason => $REASON,
                      headers => \%kh);
    item_ok($k1, 201, { on_hand => 42, version => 1 },
            'the keyed PUT that got 507 now runs (201)');
    ok(!$k1->{headers}{'idempotent-replayed'}, 'and is not a replay');
    my $k2 = put_item($n, $L, $K, 'here', 42, reason => $REASON,
                      headers => \%kh);
    ok($k2->{status} == 201 && $k2->{headers}{'idempotent-replayed'}
       && $k2->{body} eq $k1->{body},
       'its repeat is now a replay of the 201')
        or diag InvTest::show($k2);
    my $more = 0;
    for my $j (1 .. 40) {
        my $r = $j % 4 == 0
            ? adjust($n, $L, $SKU, $loc->($j), 1, reason => $REASON)
            : put_item($n, $L, $SKU, $loc->($i + $j), 1, reason => $REASON);
        $more++ if $r->{status} == 200 || $r->{status} == 201;
    }
    is($more, 40, 'after the raise, 40 more writes succeed');
    is(errors_total($n), $err1, 'no write error after the raise');
    is($n->req(GET => '/v1/health')->{status}, 200, 'health stays 200');
    ledger_ok($n, $L, 'after the raise');
    verify_ok($D, scalar @{ $L->{acks} }, 'after the raise');
    $n->stop;
}

# --------------------------------------------------------------------------
# 2. a full disk: the store on a small tmpfs, map_size larger than it

my ($MNT, $NGX);
END {
    # safety net: nginx first (it maps the store), then the mount
    if ($MNT && -d $MNT) {
        local $?;
        eval { $NGX->stop } if $NGX && $NGX->{running};
        if (system("mountpoint -q '$MNT'") == 0) {
            system('umount', $MNT) == 0 or system('umount', '-l', $MNT);
        }
    }
}

sub df_avail {
    my ($dir) = @_;
    my $out = `df -B1 --output=avail '$dir' 2>&1`;
    return $out =~ /(\d+)\s*\z/ ? $1 : undef;
}

sub df_used {
    my ($dir) = @_;
    my $out = `df -B1 --output=used '$dir' 2>&1`;
    return $out =~ /(\d+)\s*\z/ ? $1 : undef;
}

# write zeros until $bytes are written or the file system is full
sub fill_file {
    my ($file, $bytes) = @_;
    open my $fh, '>', $file or die "$file: $!";
    binmode $fh;
    my $chunk = "\0" x 65536;
    my $done = 0;
    while ($done < $bytes) {
        my $len = $bytes - $done < 65536 ? $bytes - $done : 65536;
        my $w = syswrite $fh, $chunk, $len;
        last unless $w;
        $done += $w;
    }
    close $fh;
    return $done;
}

SKIP: {
    skip 'the full-disk part mounts a tmpfs: needs root', 1 if $> != 0;
    my $base = tempdir('inventory-t72-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $base or die "chmod $base: $!";
    my $mnt = "$base/mnt";
    mkdir $mnt or die "mkdir $mnt: $!";
    my $out = `mount -t tmpfs -o size=3m,mode=0755 tmpfs '$mnt' 2>&1`;
    skip "mount -t tmpfs failed: $out", 1 if $?;
    $MNT = $mnt;

    my $SKU = 'D-' . ('d' x 40);
    my $loc = sub { sprintf 'loc-%05d-%s', $_[0], 'l' x 30 };
    my $n = InvTest->start(datadir => "$mnt/data",
                           store_args => 'map_size=64m');
    $NGX = $n;
    my $D = $n->datadir;
    my $L = ledger();
    for my $j (0 .. 39) {
        put_item($n, $L, $SKU, $loc->($j), 100 + $j, reason => $REASON);
    }
    is(scalar @{ $L->{acks} }, 40, 'full disk: 40 items written');
    my @w0 = $n->worker_pids;
    my $err0 = errors_total($n);
    my $next = 40;
    my $failures = 0;

    # fill to failure; returns the first failed answer
    my $fill = sub {
        my ($label) = @_;
        my $r;
        for (1 .. 5000) {
            $r = $next % 4 == 3
                ? adjust($n, $L, $SKU, $loc->(int($next / 3)), 1,
                         reason => $REASON)
                : put_item($n, $L, $SKU, $loc->($next), 1,
                           reason => $REASON);
            last if $r->{status} != 200 && $r->{status} != 201;
            $next++;
        }
        $failures++ if $r->{status} >= 500;
        ok($r->{status} != 200 && $r->{status} != 201,
           "$label: writes fail once the file system is full (after "
           . scalar(@{ $L->{acks} }) . ' acknowledged writes in all)');
        return $r;
    };
    # after a failure: the documented answer, nothing changed, no crash,
    # reads go on, health 503, the error counted
    my $full_checks = sub {
        my ($r, $label) = @_;
        storage_problem_ok($r, 503, 'unavailable',
                           "$label: a write on a full disk", $D, $mnt);
        is(last_seq($n), scalar @{ $L->{acks} },
           "$label: the failed write appended no event");
        my $fk = $next % 4 == 3 ? $loc->(int($next / 3)) : $loc->($next);
        is(item_now($n, $SKU, $fk), item_acked($L, $SKU, $fk),
           "$label: the item of the failed write is as it was");
        # more writes while full: each either fits in freed pages or fails
        # the same way
        my @odd;
        for my $j (1 .. 10) {
            my $w = adjust($n, $L, $SKU, $loc->($j), 1, reason => $REASON);
            next if $w->{status} == 200;
            $failures++ if $w->{status} >= 500;
            push @odd, InvTest::show($w)
                unless $w->{status} == 503
                       && ($w->{json}{code} // '') eq 'unavailable';
        }
        ok(!@odd, "$label: further writes answer 200 or 503 unavailable")
            or diag join "\n", @odd[0 .. ($#odd > 3 ? 3 : $#odd)];
        is(last_seq($n), scalar @{ $L->{acks} },
           "$label: only the acknowledged ones appended events");
        items_ok($n, $L, $label);
        # the "last write failed" flag: health 503 until a commit
        my $bad = adjust($n, $L, $SKU, $loc->(0), 1, reason => $REASON);
        if ($bad->{status} == 503) {
            $failures++;
            problem_ok($n->req(GET => '/v1/health'), 503, 'unavailable',
                       "$label: health is 503 after a failed write");
            $n->req(GET => "/v1/inventory/$SKU/" . $loc->(0));
            $n->req(GET => "/v1/events?after=0&limit=10");
            problem_ok($n->req(GET => '/v1/health'), 503, 'unavailable',
                       "$label: reads do not clear it");
        } else {
            fail("$label: a write on the full disk failed again "
                 . "(got $bad->{status})");
        }
        is(errors_total($n) - $err0, $failures,
           "$label: inventory_write_errors_total counts each failed write "
           . "($failures)");
        is_deeply([ $n->worker_pids ], \@w0,
                  "$label: the same workers (none died)");
        $n->check_log($label);
    };

    # 2a. a filler file takes all but 192 KB
    my $avail = df_avail($mnt);
    my $want = ($avail // 0) - 192 * 1024;
    ok($want > 0 && fill_file("$mnt/filler", $want) == $want,
       "full disk: a filler file of $want bytes leaves 192 KB");
    my $r = $fill->('filler');
    my $failed = $next;
    $full_checks->($r, 'filler');
    verify_ok($D, scalar @{ $L->{acks} }, 'disk full, nginx serving');

    # The flag is "cleared by the next [transaction] that commits"
    # (docs/operations.md): only a commit that shows the store can be
    # written again may clear it.  The lease holder's periodic purge of
    # idempotency keys (every 10 s) commits an empty transaction, which
    # writes nothing to the disk; health must stay 503 past it while the
    # disk is still full.  Wait for that transaction (it is counted in
    # inventory_transactions_total) or 12 s, with no request that writes.
    {
        my $tx0 = metric_value($n, 'inventory_transactions_total') // 0;
        my $deadline = time + 12;
        my ($h, $tx);
        while (1) {
            $h = $n->req(GET => '/v1/health');
            $tx = metric_value($n, 'inventory_transactions_total') // 0;
            last if $h->{status} != 503 || $tx > $tx0 || time > $deadline;
            sleep 0.25;
        }
        sleep 0.25;
        $h = $n->req(GET => '/v1/health');
        note "transactions committed meanwhile: " . ($tx - $tx0);
        problem_ok($h, 503, 'unavailable',
                   'disk still full: health stays 503 past the periodic '
                   . 'purge transaction (no write succeeded)');
    }
    my $probe = adjust($n, $L, $SKU, $loc->(1), 1, reason => $REASON);
    $failures++ if $probe->{status} == 503;
    problem_ok($probe, 503, 'unavailable',
               'disk still full: a write still fails');

    # the keyed write that failed is not remembered
    my %kh = ('Idempotency-Key' => 'full-disk-key-1');
    my $kr = put_item($n, $L, 'D-KEYED', 'here', 9, headers => \%kh);
    $failures++ if $kr->{status} == 503;
    problem_ok($kr, 503, 'unavailable', 'full disk: a keyed PUT is 503');

    unlink "$mnt/filler" or die "unlink filler: $!";
    $r = ($failed % 4 == 3)
        ? adjust($n, $L, $SKU, $loc->(int($failed / 3)), 1, reason => $REASON)
        : put_item($n, $L, $SKU, $loc->($failed), 1, reason => $REASON);
    ok($r->{status} == 200 || $r->{status} == 201,
       'filler deleted: the write that failed now succeeds')
        or diag InvTest::show($r);
    $next = $failed + 1;
    my $h = $n->req(GET => '/v1/health');
    is($h->{status}, 200, 'filler deleted: health is 200 again (the next '
                          . 'commit cleared the flag)')
        or diag InvTest::show($h);
    my $k1 = put_item($n, $L, 'D-KEYED', 'here', 9, headers => \%kh);
    item_ok($k1, 201, { on_hand => 9, version => 1 },
            'filler deleted: the keyed PUT that got 503 now runs');
    ok(!$k1->{headers}{'idempotent-replayed'}, 'and is not a replay');
    my $err1 = errors_total($n);
    is($err1 - $err0, $failures, 'no write error counted since');
    ledger_ok($n, $L, 'filler deleted');

    # 2b. the store alone fills a shrunk tmpfs; growing it brings it back
    my $used = df_used($mnt) // 0;
    my $size = (int($used / 4096) + 40) * 4096;
    $out = `mount -o remount,size=$size '$mnt' 2>&1`;
    is($?, 0, "full disk: tmpfs shrunk to $size bytes (160 KB free)")
        or diag $out;
    $r = $fill->('store grown to the end of the disk');
    $failed = $next;
    $full_checks->($r, 'store grown to the end of the disk');
    $out = `mount -o remount,size=16m '$mnt' 2>&1`;
    is($?, 0, 'full disk: tmpfs grown to 16m') or diag $out;
    $r = ($failed % 4 == 3)
        ? adjust($n, $L, $SKU, $loc->(int($failed / 3)), 1, reason => $REASON)
        : put_item($n, $L, $SKU, $loc->($failed), 1, reason => $REASON);
    ok($r->{status} == 200 || $r->{status} == 201,
       'tmpfs grown: the write that failed now succeeds')
        or diag InvTest::show($r);
    $next = $failed + 1;
    is($n->req(GET => '/v1/health')->{status}, 200,
       'tmpfs grown: health is 200 again');
    my $more = 0;
    for (1 .. 30) {
        my $w = put_item($n, $L, $SKU, $loc->($next++), 1, reason => $REASON);
        $more++ if $w->{status} == 201;
    }
    is($more, 30, 'tmpfs grown: 30 more writes succeed');
    is(errors_total($n) - $err0, $failures, 'no write error counted since');
    is_deeply([ $n->worker_pids ], \@w0, 'the same workers all along');
    ledger_ok($n, $L, 'after the full disk');
    verify_ok($D, scalar @{ $L->{acks} }, 'after the full disk');
    my @lines = grep { /inventory: a write transaction/ } split /\n/,
                $n->error_log;
    note 'error log lines of the failed writes (' . scalar(@lines) . "):\n"
         . join "\n", @lines[0 .. ($#lines > 2 ? 2 : $#lines)];
    $n->stop;
    $out = `umount '$mnt' 2>&1`;
    is($?, 0, 'the tmpfs unmounts') or diag $out;
    undef $MNT unless $?;
}

note sprintf 'took %.1f s', time - $T0;
done_testing;
