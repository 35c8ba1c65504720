# conf/access-control.conf, as it stands (placeholders filled in): reads
# open to everyone, writes behind auth_basic (a password file made with
# "openssl passwd -apr1"), the event feed and /metrics allowed from
# 127.0.0.1 only; 401 and 403 answered as problem+json.
#
# The whole of 127.0.0.0/8 is local on Linux: a client bound to 127.0.0.2
# is a real "other address" for allow/deny.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use InvTest qw(problem_ok item_ok reservation_ok encode_json decode_json);

my $T0 = time;

my $n = InvTest->start(conf => InvTest::example_conf('access-control.conf'));

# The password file the configuration names (%%DIR%%/htpasswd).  nginx
# reads it at every request, so it can be written after the start.  0644:
# the workers may run as nobody.
my ($USER, $PASS) = ('writer', 'correct horse 42');
{
    my $hash = `openssl passwd -apr1 '$PASS'`;
    die "openssl passwd failed (is openssl installed? make deps)\n"
        unless $? == 0 && defined $hash;
    chomp $hash;
    die "openssl passwd gave '$hash', not an \$apr1\$ hash\n"
        unless $hash =~ /^\$apr1\$/;
    my $f = $n->dir . '/htpasswd';
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} "reader:\$apr1\$x\$notavalidhashatall00000\n$USER:$hash\n";
    close $fh;
    chmod 0644, $f or die "chmod $f: $!";
}

sub basic { ('Authorization' => 'Basic ' . encode_base64("$_[0]:$_[1]", '')) }
my @AUTH = basic($USER, $PASS);

# from($addr, $method, $path, json => ..., headers => {...}): a request
# from a client bound to $addr, in the shape $n->req returns
sub from {
    my ($addr, $method, $path, %o) = @_;
    return $n->req($method, $path, %o, from => $addr);
}
sub local1 { from('127.0.0.1', @_) }
sub local2 { from('127.0.0.2', @_) }

# the exact problem bodies nginx answers, the shape of the module's own
sub nginx_problem_ok {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = problem_ok($r, $status, $code, "$name: $status problem+json");
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    my $members = join ',', sort keys %$j;
    my $type = $j->{type} // '';
    $ok = 0 unless $members eq 'code,detail,status,title,type'
                   && $type eq "urn:inventory:problem:$code";
    if ($status == 401) {
        my $wa = $r->{headers}{'www-authenticate'} // '';
        $ok = 0 unless !ref $wa && $wa eq 'Basic realm="inventory writes"';
        $members .= "; WWW-Authenticate: " . (ref $wa ? "@$wa" : $wa);
    }
    ok($ok, "$name: type $code, the module's members"
            . ($status == 401 ? ', WWW-Authenticate kept' : ''))
        or diag "members: $members\n" . InvTest::show($r);
    return $ok;
}

my $ITEM = '/v1/inventory/A-1/store-7';

# --- writes need credentials -------------------------------------------------
my $r = local1(PUT => $ITEM, json => { on_hand => 10 });
nginx_problem_ok($r, 401, 'unauthorized', 'PUT without credentials');
problem_ok(local1(GET => $ITEM), 404, 'not-found',
           '... and the item was not created');

# every write route, those without a SKU in the path too; the location
# "x.html" would make nginx's MIME types say text/html
my $RID = 'r_' . ('A' x 22);
for my $w ([PUT => '/v1/inventory/A-1/x.html', { on_hand => 1 }],
           [POST => "$ITEM/adjustments", { delta => 1 }],
           [POST => "$ITEM/reservations", { quantity => 1 }],
           [POST => '/v1/reservations',
            { lines => [{ sku => 'A-1', location => 'store-7',
                          quantity => 1 }] }],
           [POST => "/v1/reservations/$RID/commit", {}],
           [POST => "/v1/reservations/$RID/release", {}],
           [POST => '/v1/transfers',
            { sku => 'A-1', from => 'store-7', to => 'store-8',
              quantity => 1 }],
           [DELETE => $ITEM, undef])
{
    my ($m, $p, $j) = @$w;
    nginx_problem_ok(local1($m, $p, (defined $j ? (json => $j) : ())),
                     401, 'unauthorized', "$m $p without credentials");
}

nginx_problem_ok(local1(PUT => $ITEM, json => { on_hand => 10 },
                        headers => { basic($USER, 'wrong') }),
                 401, 'unauthorized', 'PUT with a wrong password');
nginx_problem_ok(local1(PUT => $ITEM, json => { on_hand => 10 },
                        headers => { basic('nobody', $PASS) }),
                 401, 'unauthorized', 'PUT as an unknown user');
nginx_problem_ok(local1(PUT => $ITEM, json => { on_hand => 10 },
                        headers => { Authorization => 'Basic !!!' }),
                 401, 'unauthorized', 'PUT with a malformed Authorization');
nginx_problem_ok(local1(PUT => $ITEM, json => { on_hand => 10 },
                        headers => { basic('reader', 'x') }),
                 401, 'unauthorized', 'PUT as a user with a bad hash');
problem_ok(local1(GET => $ITEM), 404, 'not-found',
           'no refused write created the item');

# --- with the right password, writes reach the module ------------------------
item_ok(local1(PUT => $ITEM, json => { on_hand => 10, min_level => 2 },
               headers => {@AUTH}),
        201, { on_hand => 10, version => 1 }, 'PUT with the password: 201');
item_ok(local2(POST => "$ITEM/adjustments", json => { delta => 5 },
               headers => {@AUTH}),
        200, { on_hand => 15, version => 2 },
        'adjustment with the password, from another address: 200');
$r = local1(POST => '/v1/reservations', headers => {@AUTH},
            json => { lines => [{ sku => 'A-1', location => 'store-7',
                                  quantity => 3 }] });
reservation_ok($r, 201, { state => 'active' },
               'cart reservation with the password: 201');
my $rid = ref $r->{json} eq 'HASH' ? $r->{json}{id} // $RID : $RID;
nginx_problem_ok(local1(POST => "/v1/reservations/$rid/commit", json => {}),
                 401, 'unauthorized', 'commit of a real reservation '
                                      . 'without credentials');
reservation_ok(local1(POST => "/v1/reservations/$rid/commit", json => {},
                      headers => {@AUTH}),
               200, { state => 'committed' }, 'commit with the password');
$r = local1(POST => '/v1/transfers', headers => {@AUTH},
            json => { sku => 'A-1', from => 'store-7', to => 'store-8',
                      quantity => 2 });
is($r->{status}, 200, 'transfer with the password: 200')
    or diag InvTest::show($r);
# credentials do not bypass the module's own checks
problem_ok(local1(PUT => $ITEM, json => { on_hand => -1 },
                  headers => {@AUTH}),
           400, 'invalid-request', 'an invalid body with the password is '
                                   . 'still the module\'s 400',
           field => 'on_hand');

# --- reads are open, from any address, with or without credentials ----------
for my $c (['127.0.0.1', {}], ['127.0.0.2', {}],
           ['127.0.0.2', { basic($USER, 'wrong') }])
{
    my ($addr, $h) = @$c;
    my $who = "from $addr" . (%$h ? ' with a wrong password' : '');
    item_ok(from($addr, GET => $ITEM, headers => $h), 200,
            { on_hand => 10, reserved => 0, version => 5 }, "GET item $who");
    my @bad = grep { $_->{status} != 200 }
              map { from($addr, @$_, headers => $h) }
        [HEAD => $ITEM], [GET => '/v1/inventory/A-1'],
        [GET => "$ITEM/events"], [GET => "/v1/reservations/$rid"],
        [GET => '/v1/low-stock'], [GET => '/v1/health'];
    is(scalar @bad, 0, "HEAD item, aggregate, item events, reservation, "
                       . "low stock, health: 200 $who")
        or diag InvTest::show($bad[0]);
}

# --- the feed and the metrics: 127.0.0.1 only --------------------------------
$r = local1(GET => '/v1/events?after=0&limit=1000');
is($r->{status}, 200, 'feed from 127.0.0.1: 200') or diag InvTest::show($r);
my $events = ref $r->{json} eq 'HASH' ? $r->{json}{events} : undef;
my $last = ref $r->{json} eq 'HASH' ? $r->{json}{last_seq} : undef;
ok(ref $events eq 'ARRAY' && @$events >= 6
   && (grep { $_->{type} eq 'ReservationCommitted' } @$events)
   && (grep { $_->{type} eq 'StockTransferredIn' } @$events),
   'it is the module\'s feed, with the writes above')
    or diag InvTest::show($r);
$r = local1(GET => '/v1/events?after=1&limit=2');
is(join(',', map { $_->{seq} } @{ $r->{json}{events} // [] }), '2,3',
   'the query string reaches the feed (after=1&limit=2: seq 2,3)')
    or diag InvTest::show($r);
$r = local1(GET => "/v1/events?after=$last&wait=1");
is_deeply([$r->{status}, $r->{json}{events}, $r->{json}{last_seq}],
          [200, [], $last], 'a long poll (wait=1) from 127.0.0.1 works')
    or diag InvTest::show($r);
is(local1(HEAD => '/v1/events')->{status}, 200, 'HEAD feed from 127.0.0.1');

for my $p ('/v1/events', '/v1/events?after=0&limit=1', '/v1//events',
           '/v1/%65vents', '/v1/./events')
{
    nginx_problem_ok(local2(GET => $p), 403, 'forbidden',
                     "GET $p from 127.0.0.2");
}
nginx_problem_ok(local2(GET => '/v1/events', headers => {@AUTH}), 403,
                 'forbidden', 'the feed from 127.0.0.2 with the password');
is(local2(HEAD => '/v1/events')->{status}, 403, 'HEAD feed from 127.0.0.2');

$r = local1(GET => '/metrics');
is($r->{status}, 200, '/metrics from 127.0.0.1: 200');
like($r->{body}, qr/^inventory_last_seq \Q$last\E$/m,
     '... the module\'s metrics (inventory_last_seq)')
    or diag InvTest::show($r);
nginx_problem_ok(local2(GET => '/metrics'), 403, 'forbidden',
                 '/metrics from 127.0.0.2');

my $htpasswd = $n->dir . '/htpasswd';

# limit_except inside the API's location: the block serves the API too
{
    my $m = InvTest->start(location_extra =>
        "limit_except GET HEAD { auth_basic \"writes\"; "
        . "auth_basic_user_file $htpasswd; }");
    my $r = $m->req(PUT => '/v1/inventory/LE-1/s1', json => { on_hand => 3 });
    is($r->{status}, 401, 'limit_except: a write without credentials is 401');
    item_ok($m->req(PUT => '/v1/inventory/LE-1/s1', json => { on_hand => 3 },
                    headers => { @AUTH }),
            201, { on_hand => 3 },
            'limit_except: a write with credentials is served by the API');
    item_ok($m->req(GET => '/v1/inventory/LE-1/s1'), 200, { on_hand => 3 },
            'limit_except: a read needs no credentials');
    $m->stop;
}

$n->stop;
diag sprintf 'took %.1f s', time - $T0;
done_testing;
