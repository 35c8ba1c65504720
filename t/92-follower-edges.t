# Replication edges.
#
# (a) Forwarding by configuration: a follower F whose writes a map on
#     "$inventory_role:$request_method" sends (error_page 418 = @primary)
#     to proxy_pass http://$inventory_primary: a write sent to F is
#     answered by the primary (X-Role: primary, which only P's location
#     adds), keyed retries replay through it, and the write appears on F
#     (at once with Inventory-Min-Seq, and by itself).  Reads on F are
#     answered by F.  $inventory_role and $inventory_primary on both.  A
#     follower without the forwarding answers writes 503 not-primary.
# (b) A store of its own: X, a primary with data, stopped and started again
#     as a follower of P (another store): it logs an error naming the
#     store_id, its health is 503, it applies nothing (dump --all
#     unchanged, none of P's items), verify passes.
# (c) Hostile requests to P's stream endpoint (no or a bad
#     Inventory-Replication header, garbage and overflowing arguments, a
#     huge after, a wrong or malformed Inventory-Store-Id, other methods, a
#     long query): each its 4xx at once; a well-formed snapshot and
#     transactions read (frames of u64 tx, u32 length, record; 204 after
#     the wait when nothing comes); P goes on serving and F goes on
#     following.
# (d) A fake primary (a Perl server in a child process) in front of a
#     follower G: a bad status line, a 200 whose Content-Length is more
#     than it sends before closing, a snapshot that is not an LMDB file,
#     random bytes as frames (behind P's own response headers), silence.
#     G (empty store) logs errors, its workers live on, nothing is applied
#     (the log empty, dump --all unchanged, verify passes) and health is
#     503 after max_lag; then the fake becomes a plain TCP relay to P and
#     G converges to P (dumps equal).  Then, G holding P's store, the same
#     garbage again (P writing meanwhile; frames of random bytes, of a huge
#     length, of a tx going back, cut short): G applies nothing, and
#     converges once the relay is back.
# (e) Expiry and the purge of idempotency keys on a follower come from its
#     primary (as transactions); the follower sweeps nothing itself, and
#     ends with the primary's records.
use strict;
use warnings;
use Test::More;
use POSIX ();
use IO::Socket::INET;
use IO::Select;
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use Time::HiRes qw(time sleep);
use InvTest qw(encode_json decode_json json_type header problem_ok last_seq
               applied_seq wait_applied same_store_ok admin_run verify_ok
               slurp);

my $REPL = 'location /replication/ { inventory_replication; }';
my $ROLE_HDR = 'add_header X-Role $inventory_role always; '
             . 'add_header X-Primary "[$inventory_primary]" always;';
my $T0 = time;

my $P = InvTest->start(workers => 2, server_extra => $REPL,
                       location_extra => $ROLE_HDR);
my $PURL = $P->url('/replication/');
my $PHOST = '127.0.0.1:' . $P->port;

for my $it (qw(E-1/w1 E-1/w2 E-2/w1)) {
    my $r = $P->req(PUT => "/v1/inventory/$it",
                    json => { on_hand => 100, min_level => 10 });
    is($r->{status}, 201, "setup: $it") or diag InvTest::show($r);
}

sub seq_of {
    my $s = header($_[0], 'inventory-seq');
    return defined $s && $s =~ /\A\d+\z/ ? $s : undef;
}

# --- (a) forwarding by configuration -------------------------------------------
my $F = InvTest->start(workers => 2,
    http_extra => "inventory_follow $PURL wait=2s;\n"
        . "    map \"\$inventory_role:\$request_method\" \$inventory_forward {\n"
        . "        default 0;\n"
        . "        \"~^follower:(PUT|POST|DELETE|PATCH)\$\" 1;\n"
        . "    }\n",
    location_extra => 'if ($inventory_forward) { return 418; } '
                      . 'error_page 418 = @primary; ' . $ROLE_HDR,
    server_extra => 'location @primary { proxy_pass http://$inventory_primary; }');
my $F0 = InvTest->start(workers => 1,
                        http_extra => "inventory_follow $PURL wait=2s;");
ok(wait_applied($F, last_seq($P), 30) && wait_applied($F0, last_seq($P), 30),
   '(a) both followers catch up with P');

my $r = $P->req(GET => '/v1/inventory/E-1/w1');
is((header($r, 'x-role') // '') . ' ' . (header($r, 'x-primary') // ''), 'primary []',
   '(a) on P: $inventory_role "primary", $inventory_primary empty');
$r = $F->req(GET => '/v1/inventory/E-1/w1');
ok($r->{status} == 200 && header($r, 'x-role') eq 'follower'
   && header($r, 'x-primary') eq "[$PHOST]",
   '(a) a GET on F is answered by F: $inventory_role "follower", '
   . "\$inventory_primary \"$PHOST\"") or diag InvTest::show($r);

# fwd_ok($r, $status, $label): answered by the primary through F
sub fwd_ok {
    my ($r, $status, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return ok($r->{status} == $status
              && (header($r, 'x-role') // '') eq 'primary'
              && defined seq_of($r),
              "(a) $label: $status from the primary (X-Role: primary), "
              . 'with Inventory-Seq') || diag InvTest::show($r);
}

# seen_on_f($path, $seq, $check): GET on F with Inventory-Min-Seq: true
# when $check->(json) holds
sub seen_on_f {
    my ($path, $seq, $check, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $g = $F->req(GET => $path, headers => { 'Inventory-Min-Seq' => $seq });
    ok($g->{status} == 200 && (seq_of($g) // -1) >= $seq
       && (header($g, 'x-role') // '') eq 'follower'
       && ref $g->{json} eq 'HASH' && $check->($g->{json}),
       "(a) $label: on F with Inventory-Min-Seq $seq") or diag InvTest::show($g);
}

my $N = last_seq($P);
$r = $F->req(PUT => '/v1/inventory/FW-1/w1', json => { on_hand => 42 });
fwd_ok($r, 201, 'PUT of a new item sent to F');
my $S = seq_of($r) // 0;
ok($S > $N, "(a) ... Inventory-Seq $S after P's $N");
item_on_p('FW-1/w1', 42);
seen_on_f('/v1/inventory/FW-1/w1', $S, sub { $_[0]{on_hand} == 42 },
          'the forwarded PUT');

sub item_on_p {
    my ($it, $on_hand) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $g = $P->req(GET => "/v1/inventory/$it");
    ok($g->{status} == 200 && $g->{json}{on_hand} == $on_hand,
       "(a) ... P has $it with on_hand $on_hand") or diag InvTest::show($g);
}

my %K = ('Idempotency-Key' => 'fwd-1');
$r = $F->req(POST => '/v1/inventory/FW-1/w1/adjustments',
             json => { delta => 8 }, headers => \%K);
fwd_ok($r, 200, 'a keyed adjustment sent to F');
my $again = $F->req(POST => '/v1/inventory/FW-1/w1/adjustments',
                    json => { delta => 8 }, headers => \%K);
ok($again->{status} == 200 && $again->{body} eq $r->{body}
   && (header($again, 'idempotent-replayed') // '') eq 'true',
   '(a) ... sent again with its key through F: replayed by the primary')
    or diag InvTest::show($again);
item_on_p('FW-1/w1', 50);
$r = $F->req(POST => '/v1/inventory/FW-1/w1/reservations',
             json => { quantity => 5, ttl_seconds => 600 });
fwd_ok($r, 201, 'a reservation sent to F');
my $id = ref $r->{json} eq 'HASH' ? $r->{json}{id} // 'none' : 'none';
$r = $F->req(POST => "/v1/reservations/$id/commit");
fwd_ok($r, 200, 'its commit sent to F');
$S = seq_of($r) // 0;
seen_on_f("/v1/reservations/$id", $S,
          sub { ($_[0]{state} // '') eq 'committed' },
          'the reservation committed through F');
$r = $F->req(POST => '/v1/transfers', json => { sku => 'FW-1', from => 'w1',
                                               to => 'w2', quantity => 5 });
fwd_ok($r, 200, 'a transfer sent to F');
$S = seq_of($r) // 0;
seen_on_f('/v1/inventory/FW-1/w2', $S, sub { $_[0]{on_hand} == 5 },
          'the transfer');
$r = $F->req(POST => '/v1/inventory/FW-1/w1/adjustments',
             json => { delta => -1000 });
ok($r->{status} == 409 && (header($r, 'x-role') // '') eq 'primary'
   && ($r->{json}{code} // '') eq 'insufficient-stock',
   '(a) a refused write sent to F: the primary\'s 409') or diag InvTest::show($r);
# by itself, without Inventory-Min-Seq
$N = last_seq($P);
my $t = time;
ok(wait_applied($F, $N, 10), "(a) F reaches $N by itself");
my $gf = $F->req(GET => '/v1/inventory/FW-1/w1');
my $gp = $P->req(GET => '/v1/inventory/FW-1/w1');
is($gf->{body}, $gp->{body}, '(a) F then serves the item as P does');

$r = $F0->req(PUT => '/v1/inventory/FW-2/w1', json => { on_hand => 1 });
problem_ok($r, 503, 'not-primary', '(a) without forwarding: 503 not-primary');
ok(($r->{json}{primary} // '') eq $PURL
   && (header($r, 'retry-after') // '') =~ /\A\d+\z/,
   '(a) ... naming the primary, with Retry-After') or diag InvTest::show($r);
is($P->req(GET => '/v1/inventory/FW-2/w1')->{status}, 404,
   '(a) ... and P never saw it');
$F0->stop;

# --- (b) a follower with a store of its own --------------------------------------
my $X = InvTest->start(workers => 1);
for my $q (1 .. 3) {
    $X->req(PUT => "/v1/inventory/X-$q/w1", json => { on_hand => $q });
}
my $XN = last_seq($X);
is($XN, 3, '(b) X, a primary, holds 3 events');
my $xsid = ($X->req(GET => '/v1/health')->{json} // {})->{store_id} // '';
my $psid = ($P->req(GET => '/v1/health')->{json} // {})->{store_id} // '';
ok($xsid =~ /\A[0-9a-f]{32}\z/ && $psid =~ /\A[0-9a-f]{32}\z/
   && $xsid ne $psid, "(b) X's store_id $xsid is not P's $psid");
$X->stop;
my (undef, $xall) = admin_run('dump', '--all', $X->datadir);
$X->reconfigure(http_extra => "inventory_follow $PURL wait=1s max_lag=2s;");
$X->restart;
my ($line, $deadline) = (undef, time + 15);
while (time < $deadline) {
    ($line) = grep { /\[error\].*store_id/ } split /\n/, $X->error_log;
    last if $line;
    sleep 0.1;
}
ok($line, '(b) X, now a follower of P, logs an error naming the store_id')
    or diag $X->error_log;
diag "(b) $line" if $line;
$deadline = time + 10;
do { $r = $X->req(GET => '/v1/health'); sleep 0.1 }
    while $r->{status} != 503 && time < $deadline;
problem_ok($r, 503, 'unavailable', '(b) its health is 503 unavailable');
sleep 1;
is(last_seq($X), $XN, '(b) it applied nothing: its log still has 3 events');
is($X->req(GET => '/v1/inventory/E-1/w1')->{status}, 404,
   '(b) none of P\'s items');
is($X->req(GET => '/v1/inventory/X-2/w1')->{json}{on_hand}, 2,
   '(b) its own items are still there');
$r = $X->req(PUT => '/v1/inventory/X-9/w1', json => { on_hand => 1 });
problem_ok($r, 503, 'not-primary', '(b) it refuses writes');
my $xnow = (admin_run('dump', '--all', $X->datadir))[1];
ok($xnow eq $xall, '(b) dump --all of its store is unchanged')
    or diag InvTest::_first_difference($xall, $xnow);
verify_ok($X->datadir, 3, '(b) X');
$X->stop;

# --- (c) hostile requests to the stream endpoint -------------------------------
my $RH = 'Inventory-Replication';
my $MAXU = '18446744073709551615';
my @C = (
    # [label, method, path, [headers], status, code (undef: any 4xx problem)]
    ['snapshot without the header', 'GET', 'snapshot', [], 400, 'invalid-request'],
    ['snapshot, version 2', 'GET', 'snapshot', [$RH => 2], 400, 'invalid-request'],
    ['snapshot, version abc', 'GET', 'snapshot', [$RH => 'abc'], 400, 'invalid-request'],
    ['snapshot, empty version', 'GET', 'snapshot', [$RH => ''], 400, 'invalid-request'],
    ['snapshot, version 1.0', 'GET', 'snapshot', [$RH => '1.0'], 400, 'invalid-request'],
    ['transactions without the header', 'GET', 'transactions?after=0&wait=0', [], 400, 'invalid-request'],
    ['transactions, version 0', 'GET', 'transactions?after=0&wait=0', [$RH => 0], 400, 'invalid-request'],
    ['after=abc', 'GET', 'transactions?after=abc&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['after=-1', 'GET', 'transactions?after=-1&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['after=', 'GET', 'transactions?after=&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['after=1.5', 'GET', 'transactions?after=1.5&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['after=0x10', 'GET', 'transactions?after=0x10&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['after overflowing u64', 'GET', "transactions?after=${MAXU}0&wait=0", [$RH => 1], 400, 'invalid-request'],
    ['after=99999999999999999999999', 'GET', 'transactions?after=99999999999999999999999&wait=0', [$RH => 1], 400, 'invalid-request'],
    ['wait=abc', 'GET', 'transactions?after=0&wait=abc', [$RH => 1], 400, 'invalid-request'],
    ['wait=-1', 'GET', 'transactions?after=0&wait=-1', [$RH => 1], 400, 'invalid-request'],
    ['wait overflowing', 'GET', 'transactions?after=0&wait=99999999999999999999', [$RH => 1], 400, 'invalid-request'],
    ['huge after (u64 max)', 'GET', "transactions?after=$MAXU&wait=0", [$RH => 1, 'Inventory-Store-Id' => $psid], 'huge', undef],
    ['wrong store id', 'GET', 'transactions?after=0&wait=0', [$RH => 1, 'Inventory-Store-Id' => '0' x 32], 409, 'store-mismatch'],
    ["X's store id", 'GET', 'transactions?after=0&wait=0', [$RH => 1, 'Inventory-Store-Id' => $xsid], 409, 'store-mismatch'],
    ['malformed store id', 'GET', 'transactions?after=0&wait=0', [$RH => 1, 'Inventory-Store-Id' => 'zz-not-hex-' . ('q' x 200)], 'mal', undef],
    ['a 10 KB query', 'GET', 'transactions?after=0&wait=0&x=' . ('A' x 10000), [$RH => 1], 'any4', undef],
    ['POST transactions', 'POST', 'transactions?after=0&wait=0', [$RH => 1], 405, 'method-not-allowed'],
    ['PUT transactions', 'PUT', 'transactions?after=0', [$RH => 1], 405, 'method-not-allowed'],
    ['DELETE snapshot', 'DELETE', 'snapshot', [$RH => 1], 405, 'method-not-allowed'],
    ['POST snapshot', 'POST', 'snapshot', [$RH => 1], 405, 'method-not-allowed'],
);
for my $c (@C) {
    my ($label, $m, $path, $h, $st, $code) = @$c;
    my $t0 = time;
    my $x = $P->raw_req($m, "/replication/$path", headers => $h,
                        ($m =~ /^P/ ? (body => 'garbage') : ()),
                        timeout => 10);
    my $el = time - $t0;
    if ($st =~ /^\d+\z/) {
        problem_ok($x, $st, $code, "(c) $label: $st $code",
                   ($st == 405 ? (allow => ['GET']) : ()));
    } else {
        my %may = (huge => [400, 409, 410], mal => [400, 409],
                   any4 => [400 .. 499]);
        my $one = grep { $_ == $x->{status} } @{ $may{$st} };
        ok($one && ($st eq 'any4'
                    || ($x->{content_type} =~ m{^application/problem\+json}
                        && ref $x->{json} eq 'HASH')),
           "(c) $label: " . join('/', $st eq 'any4' ? '4xx'
                                                    : @{ $may{$st} })
           . ' problem') or diag InvTest::show($x);
        diag "(c) $label: $x->{status} " . ($x->{json}{code} // '')
            if ref $x->{json} eq 'HASH';
    }
    ok($el < 5, sprintf('(c) %s: answered at once (%.2f s)', $label, $el));
}

# frames($body): ([[tx, length], ...], whether they fill the body exactly)
sub frames {
    my ($bd) = @_;
    my ($off, @f) = (0);
    while ($off + 12 <= length $bd) {
        my ($hi, $lo, $len) = unpack 'N N N', substr($bd, $off, 12);
        last if $off + 12 + $len > length $bd;
        push @f, [ $hi * 4294967296 + $lo, $len ];
        $off += 12 + $len;
    }
    return (\@f, $off == length $bd);
}

$r = $P->raw_req(GET => '/replication/snapshot', headers => [$RH => 1]);
ok($r->{status} == 200 && length $r->{body} > 0,
   '(c) a well-formed snapshot request: 200 with a body ('
   . length($r->{body}) . ' bytes)') or diag InvTest::show($r);
my $SNAP_CT = header($r, 'content-type') // '';
$r = $P->raw_req(GET => '/replication/transactions?after=0&wait=0',
                 headers => [$RH => 1, 'Inventory-Store-Id' => $psid]);
my $lasttx;
if ($r->{status} == 410) {
    problem_ok($r, 410, 'snapshot-required',
               '(c) transactions after 0: 410 snapshot-required');
} else {
    my ($f, $whole) = frames($r->{body});
    my @up = grep { $f->[$_][0] <= $f->[$_ - 1][0] } 1 .. $#$f;
    ok($r->{status} == 200 && @$f && $whole && !@up,
       '(c) transactions after 0: 200, ' . scalar(@$f) . ' frames filling '
       . 'the body, tx increasing') or diag InvTest::show($r);
    $lasttx = @$f ? $f->[-1][0] : undef;
}
SKIP: {
    skip 'no tx known', 2 unless defined $lasttx;
    $t = time;
    $r = $P->raw_req(GET => "/replication/transactions?after=$lasttx&wait=1",
                     headers => [$RH => 1, 'Inventory-Store-Id' => $psid]);
    my $el = time - $t;
    ok($r->{status} == 204 && $r->{body} eq '' && $el > 0.5 && $el < 5,
       sprintf('(c) transactions after the last tx %d, wait=1: 204 after '
               . 'the wait (%.2f s)', $lasttx, $el)) or diag InvTest::show($r);
    $t = time;
    $r = $P->raw_req(GET => "/replication/transactions?after=$lasttx&wait=0",
                     headers => [$RH => 1, 'Inventory-Store-Id' => $psid]);
    ok($r->{status} == 204 && time - $t < 1, '(c) ... wait=0: 204 at once')
        or diag InvTest::show($r);
}
$r = $P->req(GET => '/v1/health');
is($r->{status}, 200, '(c) P is healthy after the hostile requests');
$r = $P->req(POST => '/v1/inventory/E-2/w1/adjustments', json => { delta => 1 });
is($r->{status}, 200, '(c) P takes a write');
ok(wait_applied($F, last_seq($P), 15), '(c) F still follows P');
$P->check_log('(c)');

# --- (d) a fake primary ---------------------------------------------------------
my $FD = $P->dir . '/fake';
mkdir $FD or die "mkdir $FD: $!";
my $PPORT = $P->port;

sub set_mode {
    my ($m) = @_;
    open my $fh, '>', "$FD/mode.tmp" or die "$FD/mode.tmp: $!";
    print {$fh} $m;
    close $fh;
    rename "$FD/mode.tmp", "$FD/mode" or die "rename: $!";
}
sub mode { my $m = slurp("$FD/mode") // 'exit'; $m }

# the fake's side of one connection ------------------------------------------
sub put_all {
    my ($s, $d) = @_;
    my $off = 0;
    while ($off < length $d) {
        my $w = syswrite $s, $d, length($d) - $off, $off;
        return 0 unless defined $w;
        $off += $w;
    }
    return 1;
}

sub log_req {
    my ($line) = @_;
    sysopen my $fh, "$FD/requests", O_WRONLY | O_APPEND | O_CREAT or return;
    syswrite $fh, "$line\n";
    close $fh;
}

# real($head): P's answer to the request (wait=0, Connection: close):
# (status line, [header lines], body)
sub real {
    my ($head) = @_;
    my @l = split /\r\n/, $head;
    my $rl = shift @l;
    $rl =~ s/([?&])wait=\d+/${1}wait=0/;
    @l = grep { !/^(?:connection|host):/i } @l;
    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $PPORT, Timeout => 5)
        or return ('HTTP/1.1 200 OK', [], '');
    put_all($u, join("\r\n", $rl, "Host: $PHOST", 'Connection: close', @l)
                . "\r\n\r\n");
    my $buf = '';
    my $sel = IO::Select->new($u);
    while ($sel->can_read(10)) {
        my $n = sysread $u, $buf, 65536, length $buf;
        last unless $n;
    }
    close $u;
    my ($h, $body) = split /\r\n\r\n/, $buf, 2;
    $body //= '';
    my @hl = split /\r\n/, $h // '';
    my $sl = shift(@hl) // 'HTTP/1.1 200 OK';
    if (grep { /^transfer-encoding:\s*chunked/i } @hl) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last unless $len;
            $out .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    @hl = grep { !/^(?:content-length|transfer-encoding|connection|date
                      |server):/xi } @hl;
    @hl = ('Content-Type: application/octet-stream')
        unless $sl =~ m{^HTTP/1\.[01] 20[04]\b};
    return ($sl, \@hl, $body);
}

sub rnd { join '', map { chr int rand 256 } 1 .. $_[0] }

sub answer {
    my ($c, $hl, $body, $claimed) = @_;
    put_all($c, join("\r\n", 'HTTP/1.1 200 OK', @$hl,
                     'Content-Length: ' . ($claimed // length $body),
                     'Connection: close') . "\r\n\r\n" . $body);
}

sub relay {
    my ($c, $buf) = @_;
    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $PPORT, Timeout => 5)
        or return;
    put_all($u, $buf) or return;
    # the requests after the first on a kept-alive connection, logged too
    my $more = substr $buf, index($buf, "\r\n\r\n") + 4;
    my $sel = IO::Select->new($c, $u);
    my $srv = getppid;
    while (mode() eq 'relay' && getppid == $srv) {
        for my $s ($sel->can_read(0.2)) {
            my $n = sysread $s, my $d, 65536;
            return unless $n;
            if ($s == $c) {
                $more .= $d;
                while ($more =~ s/\A.*?([A-Z]+ \S+ HTTP\/1\.\d)\r\n(.*?)\r\n\r\n//s) {
                    log_req(join "\t", 'relay', $1, join('|', split /\r\n/, $2));
                }
            }
            put_all($s == $c ? $u : $c, $d) or return;
        }
    }
}

sub serve {
    my ($c, $k) = @_;
    binmode $c;
    my $buf = '';
    my $sel = IO::Select->new($c);
    while ($buf !~ /\r\n\r\n/) {
        return unless $sel->can_read(10);
        my $n = sysread $c, $buf, 65536, length $buf;
        return unless $n;
    }
    my ($head) = split /\r\n\r\n/, $buf, 2;
    my $mode = mode();
    my ($rl, @hl) = split /\r\n/, $head;
    my $snap = $rl =~ m{/snapshot\b};
    my ($after) = $rl =~ /[?&]after=(\d+)/;
    $after //= 0;
    # $k: how many requests this mode had before (the variant to send)
    $k = () = requests($mode);
    log_req(join "\t", $mode, $rl, join('|', @hl));
    return relay($c, $buf) if $mode eq 'relay';
    if ($mode eq 'badstatus') {
        put_all($c, $k % 2 ? "HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"
                           : "\x16\x03\x01 garbage \xff\x00\r\n\r\n" . rnd(100));
    } elsif ($mode eq 'short') {
        # a snapshot: the first half of P's; transactions: random bytes
        my ($sl, $h, $bd) = real($head);
        $bd = rnd(3000) if !$snap || length $bd < 24;
        answer($c, $h, substr($bd, 0, length($bd) / 2), length($bd) * 4 + 1000);
    } elsif ($mode eq 'notlmdb' || ($mode eq 'frames' && $snap)) {
        my ($sl, $h, $bd) = real($head);
        answer($c, $h, rnd(65536 + int rand 4096));
    } elsif ($mode eq 'frames') {
        my (undef, $h) = real($head);
        my $v = $k % 5;
        my $tx = sub { pack 'N N', int($_[0] / 4294967296), $_[0] % 4294967296 };
        my $bd = $v == 0 ? rnd(4096)
              : $v == 1 ? $tx->($after + 1) . pack('N', 0xFFFFFFF0) . rnd(100)
              : $v == 2 ? join '', map { $tx->($after + $_)
                                         . pack('N', 200) . rnd(200) } 1 .. 3
              : $v == 3 ? $tx->($after) . pack('N', 64) . rnd(64)
                          . $tx->($after > 0 ? $after - 1 : 0) . pack('N', 64)
                          . rnd(64)
              :           $tx->($after + 1) . pack('N', 80) . rnd(20);
        answer($c, $h, $bd);
    } elsif ($mode eq 'silent') {
        my ($until, $srv) = (time + 60, getppid);
        sleep 0.2 while mode() eq 'silent' && time < $until
                        && getppid == $srv;
    }
}

# the fake server: one child process, one more per connection
my $LS = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                               Proto => 'tcp', Listen => 64, ReuseAddr => 1)
    or die "listen: $!";
my $FPORT = $LS->sockport;
set_mode('badstatus');
my $FAKE = fork // die "fork: $!";
if (!$FAKE) {
    $SIG{CHLD} = 'IGNORE';
    $SIG{PIPE} = 'IGNORE';
    my $k = 0;
    my $parent = getppid;
    my $sel = IO::Select->new($LS);
    # ends with the test (mode "exit", its directory gone, or the test gone)
    while (mode() ne 'exit' && getppid == $parent) {
        next unless $sel->can_read(0.5);
        my $c = $LS->accept or next;
        $k++;
        my $pid = fork;
        if (defined $pid && !$pid) {
            close $LS;
            srand($$ ^ time);
            eval { serve($c, $k) };
            close $c;
            POSIX::_exit(0);
        }
        close $c;
    }
    POSIX::_exit(0);
}
close $LS;
my $FURL = "http://127.0.0.1:$FPORT/replication/";
END { if ($FAKE) { set_mode('exit') if -d $FD; kill 'TERM', $FAKE; waitpid $FAKE, 0 } }

# requests($mode): the requests the fake logged (in that mode)
sub requests {
    my ($m) = @_;
    my @l = split /\n/, slurp("$FD/requests") // '';
    return grep { !defined $m || /^\Q$m\E\t/ } @l;
}

# phase($mode, $want, $label): switches the fake to $mode; true once G
# made $want requests in it (within 20 s)
sub phase {
    my ($m, $want) = @_;
    my $before = requests($m);
    set_mode($m);
    my $deadline = time + 20;
    while (time < $deadline) {
        return requests($m) - $before if requests($m) - $before >= $want;
        sleep 0.1;
    }
    return requests($m) - $before;
}

my $G = InvTest->start(workers => 2,
    http_extra => "inventory_follow $FURL wait=1s max_lag=2s;");
my @GW = $G->worker_pids;
my (undef, $G_ALL0) = admin_run('dump', '--all', $G->datadir);

# garbage($label, [mode => count, ...], $dump_all): the fake in each mode
# until G made count requests in it: each time G logs an error, its
# workers live on, nothing of the error log is an alert; at the end its
# dump --all is $dump_all (nothing applied) and verify passes
sub garbage {
    my ($label, $modes, $all) = @_;
    my @m = @$modes;
    while (my ($m, $want) = splice @m, 0, 2) {
        my $off = length $G->error_log;
        my $t = time;
        my $got = phase($m, $want);
        ok($got >= $want, sprintf("(d) %s, %s: G asked %d times (>= %d) "
           . 'within 20 s (%.1f s)', $label, $m, $got, $want, time - $t));
        # the answer is handled on the thread pool: its error may come later
        my @err;
        my $until = time + 5;
        while (1) {
            @err = grep { /\[(?:error|warn)\]/ }
                    split /\n/, substr($G->error_log, $off);
            last if @err || time > $until;
            sleep 0.1;
        }
        sleep 0.3;
        ok(scalar @err, "(d) $label, $m: G logged an error")
            or diag substr($G->error_log, $off);
        diag "(d) $label, $m: $_" for @err[0 .. ($#err > 2 ? 2 : $#err)];
        is(join(' ', $G->worker_pids), join(' ', @GW),
           "(d) $label, $m: G's workers live on");
        $G->check_log("$label, $m");
    }
    my $now = (admin_run('dump', '--all', $G->datadir))[1];
    ok($now eq $all, "(d) $label: nothing applied (dump --all unchanged)")
        or diag InvTest::_first_difference($all, $now);
    my (undef, $out) = admin_run('dump', $G->datadir);
    my $n = () = $out =~ /\n/g;
    verify_ok($G->datadir, $n, "(d) $label");
}

# relay($label): the fake relays to P; G reaches P's last seq, the stores
# are the same
sub relay_ok {
    my ($label) = @_;
    phase('relay', 1);
    my $n = last_seq($P);
    my $t = time;
    ok(wait_applied($G, $n, 30), sprintf("(d) %s: through the relay, G "
       . "reaches P's %d (%.1f s)", $label, $n, time - $t))
        or diag $G->req(GET => '/v1/health')->{body};
    same_store_ok([ $P->datadir, $G->datadir ], "(d) $label");
}

# hold(): the fake holds G (accepts and says nothing), once G's store no
# longer changes: what P writes then, G can only get through the fake
sub hold {
    phase('silent', 1);
    sleep 0.5;
    my (undef, $x) = admin_run('dump', '--all', $G->datadir);
    for (1 .. 20) {
        sleep 0.25;
        my (undef, $y) = admin_run('dump', '--all', $G->datadir);
        return $y if $y eq $x;
        $x = $y;
    }
    return $x;
}

# P writes $n adjustments
sub p_writes {
    my ($n) = @_;
    my $ok = 0;
    for (1 .. $n) {
        $ok++ if $P->req(POST => '/v1/inventory/E-1/w1/adjustments',
                         json => { delta => 1 })->{status} == 200;
    }
    is($ok, $n, "(d) P takes $n writes");
}

garbage('empty G', [ badstatus => 2, short => 1, notlmdb => 1 ], $G_ALL0);
is(last_seq($G), 0, '(d) empty G: its log is still empty');
phase('silent', 1);
sleep 3;
$r = $G->req(GET => '/v1/health');
problem_ok($r, 503, 'unavailable',
           '(d) nothing heard for max_lag (2 s): G\'s health is 503');

relay_ok('G empty at first');
my @bad = grep { !/(?:\t|\|)Inventory-Replication: 1(?:\||\z)/i } requests();
ok(!@bad, '(d) every request G made carried Inventory-Replication: 1')
    or diag join "\n", @bad[0 .. ($#bad > 5 ? 5 : $#bad)];
my @tx = grep { m{\tGET \S*/transactions\?} } requests('relay');
my @nosid = grep { !/(?:\t|\|)Inventory-Store-Id: \Q$psid\E(?:\||\z)/i } @tx;
ok(@tx && !@nosid, '(d) its transactions requests name P\'s store_id')
    or diag join "\n", @nosid[0 .. ($#nosid > 5 ? 5 : $#nosid)];

# G holding P's store, P writing: broken frames (random bytes; a length
# of 4 GB; records of random bytes; a tx G holds, then one going back; a
# frame cut short), each behind P's own response headers
my $G_ALL1 = hold();
my $GN = last_seq($G);
p_writes(5);
ok($GN < last_seq($P), "(d) G at $GN, behind P");
garbage('G holding P\'s store, broken frames', [ frames => 5 ], $G_ALL1);
is(last_seq($G), $GN, "(d) G's log still ends at $GN");
relay_ok('after the broken frames');

# and broken answers of other kinds
$G_ALL1 = hold();
$GN = last_seq($G);
p_writes(5);
garbage('G holding P\'s store, broken answers',
        [ short => 1, notlmdb => 1, badstatus => 1 ], $G_ALL1);
is(last_seq($G), $GN, "(d) G's log still ends at $GN");
relay_ok('at the end');
my $h = $G->req(GET => '/v1/health');
ok($h->{status} == 200 && ($h->{json}{replication}{connected} // 0),
   '(d) G healthy and connected') or diag InvTest::show($h);

# --- (e) expiry and the purge of idempotency keys come from the primary -------
# Q expires a 1 s reservation and purges keys of a 1 s TTL (its sweeper,
# every 10 s for keys); its follower FQ, configured alike, sweeps nothing
# itself: it gets both as Q's transactions and ends with Q's records.
{
    my $TTL = 'inventory_idempotency_ttl 1s;';
    my $Q = InvTest->start(workers => 1, server_extra => $REPL,
                           http_extra => $TTL);
    my $FQ = InvTest->start(workers => 1, http_extra => $TTL
        . ' inventory_follow ' . $Q->url('/replication/') . ' wait=1s;');
    $Q->req(PUT => '/v1/inventory/EX-1/w1', json => { on_hand => 10 });
    my $rv = $Q->req(POST => '/v1/inventory/EX-1/w1/reservations',
                     json => { quantity => 2, ttl_seconds => 1 });
    my $rid = ref $rv->{json} eq 'HASH' ? $rv->{json}{id} // 'none' : 'none';
    my $kr = $Q->req(POST => '/v1/inventory/EX-1/w1/adjustments',
                     json => { delta => 1 },
                     headers => { 'Idempotency-Key' => 'ex-key-1' });
    ok($rv->{status} == 201 && $kr->{status} == 200,
       '(e) Q: a 1 s reservation and a keyed write');
    ok(wait_applied($FQ, last_seq($Q), 15), '(e) FQ has them');
    my $idem = sub {
        my ($n) = @_;
        my (undef, $out) = admin_run('dump', '--all', $n->datadir);
        return scalar grep { /^idempotency\t/ } split /\n/, $out;
    };
    is($idem->($FQ), 1, '(e) FQ holds the idempotency key');
    my ($exp, $purged, $deadline) = (0, 0, time + 20);
    while (time < $deadline && !($exp && $purged)) {
        $exp ||= ($Q->req(GET => "/v1/reservations/$rid")->{json}{state}
                  // '') eq 'expired';
        $purged ||= $idem->($Q) == 0;
        sleep 0.2;
    }
    ok($exp && $purged, '(e) Q expired the reservation and purged the key');
    my $N = last_seq($Q);
    ok(wait_applied($FQ, $N, 15), "(e) FQ reaches Q's $N (the expiry)");
    my ($same, $qa, $fa) = (0);
    $deadline = time + 10;
    while (time < $deadline) {
        (undef, $qa) = admin_run('dump', '--all', $Q->datadir);
        (undef, $fa) = admin_run('dump', '--all', $FQ->datadir);
        last if $same = $qa eq $fa;
        sleep 0.2;
    }
    ok($same, '(e) FQ\'s dump --all becomes Q\'s: the expiry and the purge '
       . 'came as transactions, FQ swept nothing of its own')
        or diag InvTest::_first_difference($qa, $fa);
    is($FQ->req(GET => "/v1/reservations/$rid")->{json}{state}, 'expired',
       '(e) FQ serves the reservation expired');
    is($idem->($FQ), 0, '(e) FQ no longer holds the key');
    same_store_ok([ $Q->datadir, $FQ->datadir ], '(e) Q and FQ');
    $FQ->stop;
    $Q->stop;
}

$G->stop;
set_mode('exit');
kill 'TERM', $FAKE;
waitpid $FAKE, 0;
$FAKE = undef;
$F->stop;
$P->stop;
diag sprintf 't/92: %.1f s', time - $T0;
done_testing;
