# build/inventory-admin verify|rebuild|dump|stats STORE: stats, verify and
# dump while nginx serves (also while it writes); rebuild refused while
# nginx runs unless --take-write-lock; a projection corrupted through the
# LMDB API (mdb_dump / mdb_load) is found by verify, repaired by rebuild and
# served repaired; a bad low-stock index entry likewise, and an entry of
# the index of ended reservations that names none (on a copy); file
# ownership of the store stays with the worker user; usage errors.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use InvTest qw(item_ok problem_ok parallel encode_json decode_json json_type
               feed_pages admin_run owner_problems verify_ok last_seq);

my $n = InvTest->start(workers => 2);
my $D = $n->datadir;

sub owners_ok {
    my ($label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p = owner_problems($D);
    ok(!@p, "store files keep their owner ($label)") or do {
        diag join "\n", @p;
        # let the workers open the store again, so the rest can run
        system('chown', '-R', ($> == 0 ? 'nobody' : $>), $D);
    };
}

sub stats {
    my ($rc, $out, $err) = admin_run('stats', $D);
    my $j = eval { decode_json($out) };
    return ($rc, $j, $out, $err);
}

# --- a store with every kind of record ----------------------------------------
my @ITEMS;
for my $i (1 .. 6) {
    for my $loc (qw(north south)) {
        my $p = "/v1/inventory/K-$i/$loc";
        my $r = $n->req(PUT => $p, json => { on_hand => 10 * $i, min_level => 15 });
        push @ITEMS, $p if $r->{status} == 201;
    }
}
$n->req(POST => '/v1/inventory/K-6/north/adjustments', json => { delta => 5 },
        headers => { 'Idempotency-Key' => 'adm-1' });
$n->req(POST => '/v1/transfers', json => { sku => 'K-5', from => 'north',
                                           to => 'east', quantity => 20 },
        headers => { 'Idempotency-Key' => 'adm-2' });
push @ITEMS, '/v1/inventory/K-5/east';
my @rid;
for my $q (1 .. 4) {
    my $r = $n->req(POST => '/v1/inventory/K-4/south/reservations',
                    json => { quantity => $q, ttl_seconds => 3600 });
    push @rid, $r->{json}{id} if $r->{status} == 201;
}
$n->req(POST => "/v1/reservations/$rid[0]/commit");
$n->req(POST => "/v1/reservations/$rid[1]/release");
is(scalar @ITEMS, 13, 'setup: 13 items');
is(scalar @rid, 4, 'setup: 4 reservations, 2 still active');

my %BEFORE = map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS;
my $N = last_seq($n);
my $lowlist = $n->req(GET => '/v1/low-stock?limit=1000')->{json}{items} // [];
my $health = $n->req(GET => '/v1/health')->{json}{store} // {};

# --- stats while serving ----------------------------------------------------------
my ($rc, $st, $out, $err) = stats();
is($rc, 0, 'stats: exit 0') or diag "$out\n$err";
like($out, qr/\A\{[^\n]*\}\n\z/, 'stats: one JSON object on one line');
my @KEYS = qw(active_reservations events idempotency_keys items last_seq
              low_stock map_size readers reservations used);
is_deeply([ sort keys %{ $st // {} } ], \@KEYS, 'stats: exactly the documented members');
is_deeply([ map { json_type($st->{$_}) } @KEYS ], [ ('number') x @KEYS ],
          'stats: every member is a number');
is_deeply({ map { ($_ => $st->{$_}) }
            qw(last_seq events items reservations active_reservations
               low_stock idempotency_keys map_size) },
          { last_seq => $N, events => $N, items => 13, reservations => 4,
            active_reservations => 2, low_stock => scalar @$lowlist,
            idempotency_keys => 2, map_size => $health->{map_size} },
          'stats: counts match the API (feed, items, reservations, low-stock, '
          . 'keys, health map_size)')
    or diag $out;
ok($st->{used} > 0 && $st->{used} <= $st->{map_size}, 'stats: 0 < used <= map_size');
cmp_ok($st->{readers}, '>=', 1, "stats: the running nginx holds reader slots "
                                . "($st->{readers})");
owners_ok('after stats');

# --- verify and dump while serving --------------------------------------------------
verify_ok($D, $N, 'nginx running');
my ($feed) = feed_pages($n, 0, 1000);
($rc, $out, $err) = admin_run('dump', $D);
is($rc, 0, 'dump: exit 0') or diag $err;
my @lines = split /\n/, $out;
is(scalar @lines, $N, "dump: $N lines");
is_deeply([ map { eval { decode_json($_) } // $_ } @lines ], $feed,
          'dump: each line is the JSON of the feed event');
($rc, $out) = admin_run('dump', $D, '--after', $N - 3);
is_deeply([ map { eval { decode_json($_) } // $_ } split /\n/, $out ],
          [ @$feed[$N - 3 .. $N - 1] ], "dump --after " . ($N - 3) . ': the last 3');
($rc, $out, $err) = admin_run('dump', $D, '--after', $N);
is("$rc|$out", '0|', "dump --after $N (the end): nothing, exit 0");
($rc, $out, $err) = admin_run('dump', $D, '--after', 1000000);
is("$rc|$out", '0|', 'dump --after beyond the end: nothing, exit 0');

# while nginx writes: each verify sees a consistent snapshot
my $flag = $n->dir . '/writes-done';
my @res = parallel(4, sub {
    my ($i) = @_;
    if ($i <= 1) {
        my ($ok, @bad) = (0);
        for my $k (1 .. 60) {
            my $p = $ITEMS[($k + $i) % @ITEMS];
            my $r = $k % 5 ? $n->req(POST => "$p/adjustments", json => { delta => 1 })
                           : $n->req(POST => "$p/reservations",
                                     json => { quantity => 1, ttl_seconds => 3600 });
            if ($r->{status} =~ /^20[01]\z/) { $ok++ }
            else { push @bad, InvTest::show($r) }
        }
        open my $fh, '>', "$flag-$i";
        close $fh;
        return encode_json({ ok => $ok, bad => \@bad });
    }
    my @runs;
    my $t0 = time;
    while (time - $t0 < 15) {
        my $done = () = glob("$flag-*");
        my ($rc, $out, $err) = admin_run($i == 2 ? 'verify' : 'dump', $D);
        if ($i == 2) {
            push @runs, [ $rc, $out =~ /\Averify: ok, (\d+) events\n\z/ ? $1 : $out . $err ];
        } else {
            my @s = map { /"seq":(\d+)/ ? $1 : -1 } split /\n/, $out;
            my $gap = grep { $s[$_] != $_ + 1 } 0 .. $#s;
            push @runs, [ $rc, $gap ? "gap in seqs: @s[0 .. 20]" : scalar @s ];
        }
        last if $done == 2 && @runs >= 2;
    }
    return encode_json({ runs => \@runs });
});
my @w = map { eval { decode_json($_) } // { died => $_ } } @res;
my $acked = ($w[0]{ok} // 0) + ($w[1]{ok} // 0);
is($acked, 120, 'writes during verify/dump: all 120 acknowledged')
    or diag encode_json([ @w[0, 1] ]);
my @vr = @{ $w[2]{runs} // [] };
my @dr = @{ $w[3]{runs} // [] };
ok(@vr >= 2 && !grep({ $_->[0] != 0 || $_->[1] !~ /^\d+\z/ } @vr),
   scalar(@vr) . ' verify runs during the writes: each exit 0, ok')
    or diag encode_json(\@vr);
ok(!grep({ $vr[$_][1] < $vr[$_ - 1][1] } 1 .. $#vr), '... seeing the log only grow')
    or diag encode_json(\@vr);
ok(@dr >= 2 && !grep({ $_->[0] != 0 || $_->[1] !~ /^\d+\z/ } @dr),
   scalar(@dr) . ' dump runs during the writes: each exit 0, seqs 1..M without gaps')
    or diag encode_json(\@dr);
diag 'verify saw ' . join(' ', map { $_->[1] } @vr) . ' events; dump saw '
     . join(' ', map { $_->[1] } @dr);
$N = last_seq($n);
verify_ok($D, $N, 'after the writes');
owners_ok('after verify and dump');

# --- rebuild while nginx runs ----------------------------------------------------------
%BEFORE = map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS;
my ($dump0) = (admin_run('dump', $D))[1];
($rc, $out, $err) = admin_run('rebuild', $D);
is($rc, 2, 'rebuild while nginx runs: exit 2');
like($err, qr/--take-write-lock/, '... the message names --take-write-lock')
    or diag $err;
is((admin_run('dump', $D))[1], $dump0, '... the log is unchanged');
verify_ok($D, $N, 'after the refused rebuild');
is_deeply({ map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS }, \%BEFORE,
          '... items unchanged');

($rc, $out, $err) = admin_run('rebuild', $D, '--take-write-lock');
is($rc, 0, 'rebuild --take-write-lock while nginx runs: exit 0') or diag "$out$err";
is($out, "rebuild: ok, $N events replayed\n", "... 'rebuild: ok, $N events replayed'");
verify_ok($D, $N, 'after rebuild --take-write-lock');
is_deeply({ map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS }, \%BEFORE,
          '... every item served exactly as before');
owners_ok('after rebuild --take-write-lock');

# rebuild --take-write-lock while nginx writes: no write lost
my $p0 = $ITEMS[0];
my $on0 = $n->req(GET => $p0)->{json}{on_hand};
@res = parallel(2, sub {
    my ($i) = @_;
    if ($i == 0) {
        my $ok = 0;
        for (1 .. 80) {
            $ok++ if $n->req(POST => "$p0/adjustments", json => { delta => 1 })
                       ->{status} == 200;
        }
        return $ok;
    }
    sleep 0.05;
    my @r;
    for (1 .. 3) { my ($rc) = admin_run('rebuild', $D, '--take-write-lock'); push @r, $rc }
    return "@r";
});
is($res[1], '0 0 0', 'three rebuilds --take-write-lock during writes: exit 0');
is($res[0], 80, '... the 80 writes acknowledged');
item_ok($n->req(GET => $p0), 200, { on_hand => $on0 + 80 },
        '... and none lost: on_hand grew by 80');
$N = last_seq($n);
verify_ok($D, $N, 'after rebuilds during writes');

# --- corruption of a projection, through the LMDB API ----------------------------------
# mdb_dump / mdb_load in their default hex format ("bytevalue"): Debian's
# lmdb-utils 0.9.24 get backslashes wrong in the printable format (-p):
# mdb_dump writes a 0x5c byte as a lone '\' (bytes 5c f2 dump as "\\f2",
# which reads back as 5c 'f' '2'), and mdb_load turns a "\\" that follows
# a \xx escape into a stale byte.  An item record holds a 0x5c byte
# whenever updated_at does, so a -p round trip corrupts items at random.
# load_record($db, $key, $value): mdb_load of that one record (hex format)
sub load_record {
    my ($db, $key, $value, $tmp, $store) = @_;
    $store //= $D;
    my $f = "$tmp/load-$db.txt";
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n",
        ' ', unpack('H*', $key), "\n ", unpack('H*', $value), "\nDATA=END\n";
    close $fh;
    system("mdb_load -s $db -f '$f' '$store' >'$f.out' 2>&1");
    my $rc = $?;
    diag `cat '$f.out'` if $rc;
    return $rc;
}

# dump_db($db, $tmp): { key => value } from mdb_dump -s $db (hex format)
sub dump_db {
    my ($db, $tmp) = @_;
    system("mdb_dump -s $db '$D' > '$tmp/$db.txt'");
    return undef if $?;
    open my $fh, '<', "$tmp/$db.txt" or return undef;
    my @l = <$fh>;
    close $fh;
    my ($h) = grep { $l[$_] eq "HEADER=END\n" } 0 .. $#l;
    my %kv;
    for (my $i = ($h // $#l) + 1; $i < $#l && $l[$i] =~ /^ /; $i += 2) {
        my ($k, $v) = map { /^ ([0-9a-f]*)$/ ? pack('H*', $1) : undef }
                      @l[$i, $i + 1];
        $kv{$k} = $v if defined $k;
    }
    return \%kv;
}

# an item no test above touched
my $VICTIM = '/v1/inventory/K-3/west';
item_ok($n->req(PUT => $VICTIM, json => { on_hand => 30, min_level => 15 }),
        201, {}, 'create K-3 at west');
push @ITEMS, $VICTIM;
item_ok($n->req(PUT => '/v1/inventory/K-9/low', json => { on_hand => 1,
                                                         min_level => 5 }),
        201, { low_stock => 1 }, 'and a low item');
push @ITEMS, '/v1/inventory/K-9/low';
$N = last_seq($n);
my $good = $n->req(GET => $VICTIM);
item_ok($good, 200, { on_hand => 30, min_level => 15, low_stock => 0 },
        'the item to corrupt: on_hand 30');
%BEFORE = map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS;
($dump0) = (admin_run('dump', $D))[1];
# history and time travel read the item event index, which rebuild rewrites
my $HIST = '/v1/inventory/K-4/south';
my $hist0 = $n->req(GET => "$HIST/events?limit=1000")->{body};
my %ASOF = map { ($_ => $n->req(GET => "$HIST?as_of=$_")->{body}) }
           map { $_->{at} } @{ decode_json($hist0)->{events} };
$n->stop;

my $tmp = tempdir('inventory-43-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $items = dump_db('items', $tmp);
ok($items, 'mdb_dump -s items');
my $v = $items->{"K-3\0west"} // '';
is(length $v, 88, 'the item record is 88 bytes');
my @u = unpack 'Q>11', $v;
is($u[0], 30, 'its first u64 is on_hand (30)');
$u[0] = 999;
is(load_record('items', "K-3\0west", pack('Q>11', @u), $tmp), 0,
   'mdb_load -s items of the record with on_hand 999');
owners_ok('after mdb_load');

($rc, $out, $err) = admin_run('verify', $D);
is($rc, 1, 'verify on the corrupted store: exit 1');
like($out, qr/^problem: .*K-3 at west.*on_hand 999.*on_hand 30\b/m,
     '... a problem line names K-3 at west, on_hand 999 against the replay 30')
    or diag $out;
like($out, qr/^verify: \d+ problem\(s\)$/m, '... and a summary line');
unlike($out, qr/^problem: (?!.*K-3 at west)/m, '... and no other item');

# the running nginx serves what the projection holds; verify sees it live;
# rebuild is refused
$n->restart;
item_ok($n->req(GET => $VICTIM), 200, { on_hand => 999 },
        'nginx serves the corrupted projection (on_hand 999)');
($rc, $out) = admin_run('verify', $D);
is($rc, 1, 'verify while nginx runs: exit 1 too') or diag $out;
($rc, $out, $err) = admin_run('rebuild', $D);
is($rc, 2, 'rebuild while nginx runs: refused (exit 2)');
like($err, qr/--take-write-lock/, '... naming --take-write-lock');
$n->stop;

($rc, $out, $err) = admin_run('rebuild', $D);
is($rc, 0, 'rebuild with nginx stopped: exit 0') or diag "$out$err";
like($out, qr/^rebuild: ok, $N events replayed$/m, "... 'rebuild: ok, $N events replayed'");
owners_ok('after rebuild');
verify_ok($D, $N, 'after the repair');
is((admin_run('dump', $D))[1], $dump0, 'the log is untouched by corruption and repair');

$n->restart;
is($n->req(GET => $VICTIM)->{body}, $good->{body},
   'the restarted nginx serves the repaired item, byte for byte');
is_deeply({ map { ($_ => $n->req(GET => $_)->{body}) } @ITEMS }, \%BEFORE,
          '... and every item as before the corruption');
is($n->req(GET => "$HIST/events?limit=1000")->{body}, $hist0,
   '... an item history as before');
is_deeply({ map { ($_ => $n->req(GET => "$HIST?as_of=$_")->{body}) } keys %ASOF },
          \%ASOF, '... and the item as_of each of its ' . keys(%ASOF)
                  . ' event times as before');
item_ok($n->req(POST => "$VICTIM/adjustments", json => { delta => 1 }), 200,
        { on_hand => 31, version => $good->{json}{version} + 1 },
        'a write on the repaired item goes on from its true state');
$N++;
verify_ok($D, $N, 'nginx running after the repair');

# --- a bad low-stock index entry ----------------------------------------------------------
$n->stop;
my $n_low = keys %{ dump_db('low_stock', $tmp) // {} };
cmp_ok($n_low, '>', 0, "the low-stock index holds $n_low keys");
is(load_record('low_stock', "zz\0GHOST", '', $tmp), 0,
   'mdb_load -s low_stock of a key for no item');
owners_ok('after the second mdb_load');
($rc, $out) = admin_run('verify', $D);
is($rc, 1, 'verify: exit 1');
like($out, qr/^problem: .*GHOST at zz/m, '... naming GHOST at zz') or diag $out;
($rc, $st) = stats();
is($st->{low_stock}, $n_low + 1, 'stats counts the extra index entry');
($rc, $out, $err) = admin_run('rebuild', $D);
is($rc, 0, 'rebuild: exit 0') or diag $err;
verify_ok($D, $N, 'after the second repair');
($rc, $st) = stats();
is($st->{low_stock}, $n_low, 'stats: the low-stock index is back to its size');
is($st->{readers}, 0, 'stats with nginx stopped: 0 readers');
owners_ok('after the second rebuild');
$n->restart;
my $l = $n->req(GET => '/v1/low-stock?limit=1000');
is($l->{status}, 200, 'low-stock served after the repair');
is(scalar @{ $l->{json}{items} // [] }, $n_low, '... with the real low items');

# --- an active reservation of an item that does not exist ------------------------------
# its item key sorts after every item there is: verify reports it too (on a
# copy of the store, made by mdb_copy while nginx serves)
{
    my $copy = "$tmp/ghost-store";
    mkdir $copy or die "$copy: $!";
    is(system("mdb_copy '$D' '$copy'"), 0, 'mdb_copy of the store');
    my $id = 'r_' . ('z' x 22);
    my $str = sub { pack('n', length $_[0]) . $_[0] };
    my $res = pack('C', 1) . pack('Q>3', 1000, 4102444800000, 0) . $str->('')
              . pack('n', 1) . $str->('zzzz') . $str->('zzzz')
              . pack('Q>', 2);
    is(load_record('reservations', $id, $res, $tmp, $copy), 0,
       'mdb_load -s reservations of an active one on an unknown item');
    is(load_record('reservation_expiry', pack('Q>', 4102444800000) . $id, '',
                   $tmp, $copy), 0, '... with its expiry entry');
    ($rc, $out) = admin_run('verify', $copy);
    is($rc, 1, 'verify: exit 1');
    like($out, qr/^problem: an active reservation holds stock of an unknown item$/m,
         '... an active reservation holds stock of an unknown item')
        or diag $out;
    unlike($out, qr/^problem: (?!an active reservation holds)/m,
           '... and nothing else');
}

# --- an entry of the index of ended reservations without its reservation ---------------
# (as a purge that deleted the record and not the entry would leave it):
# verify counts it; rebuild makes the index anew from the reservations
{
    my $copy = "$tmp/ended-store";
    mkdir $copy or die "$copy: $!";
    is(system("mdb_copy '$D' '$copy'"), 0, 'mdb_copy of the store');
    is(load_record('reservation_ended', pack('Q>', 1000) . 'r_' . ('y' x 22),
                   '', $tmp, $copy), 0,
       'mdb_load -s reservation_ended of an entry that names no reservation');
    ($rc, $out) = admin_run('verify', $copy);
    is($rc, 1, 'verify: exit 1');
    like($out, qr/^problem: (\d+) ended reservations, (\d+) in the index of ended ones$/m,
         '... the index of ended reservations holds one more')
        or diag $out;
    my ($ended, $indexed) = $out =~ /^problem: (\d+) ended reservations, (\d+) in/m;
    is(($indexed // 0) - ($ended // 0), 1, '... by one');
    unlike($out, qr/^problem: (?!\d+ ended reservations)/m, '... and nothing else');
    ($rc, $out, $err) = admin_run('rebuild', $copy);
    is($rc, 0, 'rebuild of the copy: exit 0') or diag $err;
    verify_ok($copy, $N, 'the copy, its index of ended reservations rebuilt');
}

# --- usage errors -----------------------------------------------------------------------
for my $c ([[], 'no arguments'], [['verify'], 'no store'],
           [['frobnicate', $D], 'an unknown command'],
           [['verify', '/nonexistent/inventory-store'], 'a missing store'],
           [['dump', $D, '--after'], '--after without SEQ'],
           [['dump', $D, '--after', 'abc'], '--after abc'],
           [['dump', $D, '--after', '-1'], '--after -1'],
           [['rebuild', $D, '--force'], 'an unknown flag'],
           [['verify', $D, '--take-write-lock'], '--take-write-lock on verify'])
{
    my ($args, $what) = @$c;
    my ($rc, $out, $err) = admin_run(@$args);
    is($rc, 2, "$what: exit 2") or diag "stdout: " . substr($out, 0, 300)
                                        . "\nstderr: $err";
    ok(length $err, "$what: a message on stderr");
}
# a SEQ past any log: nothing (or refused), never the whole log again
($rc, $out, $err) = admin_run('dump', $D, '--after', '18446744073709551615');
ok(($rc == 0 && $out eq '') || $rc == 2,
   'dump --after 2^64-1: nothing, or refused; not the whole log')
    or diag "exit $rc, " . scalar(() = $out =~ /\n/g) . ' lines';
my $empty = tempdir('inventory-43-empty-XXXXXX', TMPDIR => 1, CLEANUP => 1);
for my $cmd (qw(verify stats dump rebuild)) {
    my ($rc, $out, $err) = admin_run($cmd, $empty);
    is($rc, 2, "$cmd on a directory that is not a store: exit 2");
    opendir(my $dh, $empty) or die "opendir $empty: $!";
    my @f = grep { !/^\.\.?\z/ } readdir $dh;
    closedir $dh;
    is("@f", '', "$cmd on a directory that is not a store leaves it empty")
        or do { diag "left: @f"; unlink map { "$empty/$_" } @f };
}
verify_ok($D, $N, 'at the end, nginx running');

$n->stop;
done_testing;
