#!/usr/bin/perl
# The Dockerfile, without a Docker engine: its promises are read from the
# file (Debian 12, a non-root USER, data in a VOLUME, a HEALTHCHECK on
# /v1/health, the same nginx command as `make run`), then what the image
# runs is run here the same way: conf/nginx.conf with the Dockerfile's own
# edit, the checkout's prefix layout, nginx started by an unprivileged user
# (nobody). The store must work, be owned by that user, and survive a
# restart (what the volume keeps).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);
use InvTest qw(slurp);

my $root = $InvTest::ROOT;
open my $fh, '<', "$root/Dockerfile" or die "Dockerfile: $!";
my $df = do { local $/; <$fh> };
close $fh;
$df =~ s/\\\n/ /g;    # continuation lines

like($df, qr/^FROM debian:12\s*$/m, 'FROM debian:12');
my ($user) = $df =~ /^USER\s+(\S+)\s*$/m;
ok($user && $user ne 'root' && $user ne '0', "runs as a non-root user ("
   . ($user // 'none') . ')');
like($df, qr{^VOLUME\s+/srv/inventory/var\s*$}m, 'data (var/) is a volume');
like($df, qr{^HEALTHCHECK\b.*\bcurl\b.*http://127\.0\.0\.1:8080/v1/health}m,
     'HEALTHCHECK asks /v1/health');
like($df, qr/^EXPOSE\s+8080\s*$/m, 'EXPOSE 8080');
for my $p (qw(nginx nginx-dev liblmdb-dev libyajl-dev curl npm)) {
    like($df, qr/apt-get install[^\n]*\s\Q$p\E\s/, "installs $p");
}
like($df, qr/^RUN make module docs-tools\s*$/m,
     'builds with the Makefile, as make run does');
like($df, qr/chown -R $user:$user var/, 'the user owns var/');

# CMD is the nginx command of `make run`, with the error log on stderr
my ($cmd) = $df =~ /^CMD\s+(\[.*\])\s*$/m;
my $argv = eval { InvTest::decode_json($cmd) } || [];
is_deeply($argv, [ 'nginx', '-p', '/srv/inventory/', '-c', 'conf/nginx.conf',
                   '-e', 'stderr', '-g', 'daemon off;' ], 'CMD');
open my $mk, '<', "$root/Makefile" or die $!;
my $make = do { local $/; <$mk> };
like($make, qr/exec nginx -p \$\(CURDIR\)\/ -c conf\/nginx\.conf -g 'daemon off;'/,
     'make run starts the same nginx command');

# the Dockerfile's edit of conf/nginx.conf
my ($sed) = $df =~ m{^RUN sed -i 's/([^/]+)/([^/]+)/' conf/nginx\.conf\s*$}m;
ok($sed, 'the Dockerfile edits the listen line of conf/nginx.conf');

# --- run it as the image does, by nobody ----------------------------------
my $nobody = getpwnam('nobody');
my $prefix = tempdir('inventory-t65-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $prefix;
mkdir "$prefix/conf";
copy("$root/conf/$_", "$prefix/conf/$_") or die "copy $_: $!"
    for grep { -f "$root/conf/$_" } map { s{.*/}{}r } glob "$root/conf/*";
symlink "$root/build", "$prefix/build" or die "symlink: $!";

my $port = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    $p;
};
{
    open my $in, '<', "$prefix/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    close $in;
    my ($from, $to) = ('listen 127.0.0.1:8080;', 'listen 8080;');
    ok($conf =~ s/\Q$from\E/$to/, 'the edit applies to conf/nginx.conf');
    # "listen 8080" on all interfaces, as in the image, on a free port here
    $conf =~ s/listen 8080;/listen $port;/ or die "no listen line";
    open my $out, '>', "$prefix/conf/nginx.conf" or die $!;
    print $out $conf;
    close $out;
}
for my $d (qw(var var/data var/logs var/tmp)) {
    mkdir "$prefix/$d";
    chown $nobody, $nobody, "$prefix/$d" or die "chown $d: $!";
}

my $pid;
sub start_nginx {
    $pid = fork // die $!;
    if ($pid == 0) {
        open STDOUT, '>>', "$prefix/stderr.log";
        open STDERR, '>>', "$prefix/stderr.log";
        { no warnings 'exec';
          exec 'runuser', '-u', 'nobody', '--', 'nginx', '-p', "$prefix/",
               '-c', 'conf/nginx.conf', '-e', 'stderr', '-g', 'daemon off;'; }
        POSIX::_exit(127);
    }
    my $h = HTTP::Tiny->new(timeout => 2);
    for (1 .. 100) {
        my $r = $h->get("http://127.0.0.1:$port/v1/health");
        return $r if $r->{status} == 200;
        sleep 0.1;
    }
    return undef;
}
sub stop_nginx {
    # runuser waits for nginx: signal the master itself (conf: pid var/...)
    my $master = (slurp("$prefix/var/nginx.pid") // '') =~ /(\d+)/ ? $1 : $pid;
    kill 'QUIT', $master;
    my $t = time + 10;
    while (time < $t) {
        last if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $master, $pid if kill 0, $master;
}

my $h = HTTP::Tiny->new(timeout => 5);
my $base = "http://127.0.0.1:$port";
my $health = start_nginx();
ok($health, 'nginx started by nobody answers /v1/health 200')
    or diag(slurp("$prefix/stderr.log") // '');

SKIP: {
    skip 'nginx did not start', 8 unless $health;
    # this master (its pid file) and its workers: other nginx may run here
    my $master = (slurp("$prefix/var/nginx.pid") // '') =~ /(\d+)/ ? $1 : 0;
    my ($m) = `ps -o user=,args= -p $master`;
    my @workers = `ps -o user=,args= --ppid $master`;
    like($m // '', qr/^nobody\s+nginx: master/, 'the master runs as nobody')
        or diag `ps -ef | grep nginx`;
    ok(@workers >= 1 && !grep({ !/^nobody\s+nginx: worker/ } @workers),
       'workers run as nobody') or diag @workers;

    my $r = $h->request('PUT', "$base/v1/inventory/D-1/dock",
        { headers => { 'Content-Type' => 'application/json' },
          content => '{"on_hand":7}' });
    is($r->{status}, 201, 'a write is acknowledged');
    is((stat "$prefix/var/data/data.mdb")[4], $nobody,
       'the store belongs to nobody');
    $r = $h->get("$base/docs/");
    is($r->{status}, 200, '/docs/ serves the API page');
    like($r->{content} // '', qr/swagger-ui/i, '... Swagger UI');

    stop_nginx();
    ok(start_nginx(), 'started again on the same var/ (the volume)');
    $r = $h->get("$base/v1/inventory/D-1/dock");
    like($r->{content} // '', qr/"on_hand":7\b/, 'the write survived');
    stop_nginx();
}
my $log = slurp("$prefix/stderr.log") // '';
unlike($log, qr/\[(?:emerg|alert|crit)\]/, 'no emerg/alert/crit on stderr')
    or diag $log;

done_testing;
