#!/usr/bin/perl
# The Debian package on this machine's own nginx, as an operator uses it:
# `make deb` builds it (lintian must find no error), apt installs it, a
# server block in /etc/nginx/conf.d with a store under /var/lib serves
# writes and reads through the distribution's nginx binary and nginx.conf;
# a package built from a later commit upgrades it with the data kept; remove
# keeps the data, purge deletes it, and nothing of the package is left.
#
# It runs as root on a machine whose nginx is installed and stopped (CI's),
# and leaves /etc/nginx as it found it: every file, link and mode.  It
# skips, changing nothing, where it cannot promise that: the machine's nginx
# running, port 80 (Debian's default site) taken, the package installed
# already.  The plain suite runs it; the ASan pass (same package) skips it.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use Digest::MD5;
use File::Find ();
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use InvTest qw(slurp);

my $PKG     = 'libnginx-mod-http-inventory';
my $NGINX   = '/usr/sbin/nginx';
my $PIDFILE = '/run/nginx.pid';
my $VARLIB  = '/var/lib/nginx-inventory';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-inventory.conf';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-inventory.conf';
my $MODULE  = '/usr/lib/nginx/modules/ngx_http_inventory_module.so';
my $root    = $InvTest::ROOT;

plan skip_all => 'the package is tested once, in the plain suite'
    if $ENV{INVENTORY_MODULE};
plan skip_all => 'needs root (apt-get, /etc/nginx)' if $> != 0;
for my $tool (qw(dpkg apt-get dpkg-buildpackage lintian git)) {
    plan skip_all => "needs $tool (make deps installs it)"
        unless InvTest::which($tool);
}
plan skip_all => "needs Debian's nginx ($NGINX, /etc/nginx/nginx.conf)"
    unless -x $NGINX && -f '/etc/nginx/nginx.conf';
plan skip_all => "$PKG is installed on this machine already"
    if installed_version();
plan skip_all => "this machine's nginx is running: the test starts and "
               . 'stops it itself' if nginx_master();
plan skip_all => "$VARLIB exists already" if -e $VARLIB;
plan skip_all => 'port 80 (the default site of nginx.conf) is taken'
    unless port_free(80);

my $tmp = tempdir('inventory-t66-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $conf_d = "/etc/nginx/conf.d/inventory-t66-$$.conf";
my $etc_before = tree('/etc/nginx');
my %elsewhere_before = map { $_ => -e $_ ? 1 : 0 }
    ($MODULE, $SNIPPET, '/usr/sbin/inventory-admin');
my $started;         # we started the machine's nginx: stop it at the end
my $port = InvTest::free_port();
my $http = HTTP::Tiny->new(timeout => 10);

# whatever happens below, the machine's nginx is put back as it was
END { my $rc = $?; cleanup(); $? = $rc }
$SIG{INT} = $SIG{TERM} = sub { cleanup(); exit 1 };

# --- build --------------------------------------------------------------
my ($deb1, $v1) = build($root, 'the tree');
like($deb1, qr{/build/\Q$PKG\E_[^_/]+_\w+\.deb$},
     'make deb: build/libnginx-mod-http-inventory_VERSION_ARCH.deb');
my $count = qx(git -C $root rev-list --count HEAD);
chomp $count;
like($v1, qr/^(?:\d+\.\d+\.\d+\+$count\.g[0-9a-f]{7}|\d+\.\d+\.\d+)/,
     "its version comes from git describe ($v1)");

my %control = map { /^(\S+): (.*)$/ ? ($1 => $2) : () }
              split /\n/, run_ok("dpkg-deb -f $deb1", 'dpkg-deb -f');
my $abi = slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
          =~ /^nginx:abi=(\S+)$/m ? $1 : 'no abi';
my %depends = map { /^(\S+)/ ? ($1 => 1) : () }
              split /,\s*/, $control{Depends} // '';
ok($depends{$abi}, "depends on the nginx ABI it was built against ($abi)");
ok($depends{liblmdb0}, 'depends on liblmdb0');
ok($depends{libyajl2}, 'depends on libyajl2');
is($control{Section}, 'httpd', 'section httpd, as the libnginx-mod-*');

my %files = map { m{\s\.(/\S*)$} ? ($1 => 1) : () }
            split /\n/, run_ok("dpkg-deb -c $deb1", 'dpkg-deb -c');
for my $f ($MODULE, $SNIPPET, '/usr/sbin/inventory-admin',
           '/usr/share/man/man8/inventory-admin.8.gz',
           "/usr/share/doc/$PKG/copyright", "/usr/share/doc/$PKG/api.md.gz",
           "/usr/share/doc/$PKG/README.md.gz",
           "/usr/share/doc/$PKG/examples/debian-conf.d.conf",
           "/usr/share/doc/$PKG/examples/prometheus/inventory-alerts.yml",
           "/usr/share/doc/$PKG/examples/grafana/inventory.json")
{
    ok($files{$f}, "ships $f");
}
ok(!(grep { m{^/etc/} } keys %files), 'ships nothing under /etc itself');

# --- install ------------------------------------------------------------
BAIL_OUT('no package was built') unless $deb1;
run_ok("apt-get install -y $deb1", 'apt-get install of the package');
is(installed_version(), $v1, "dpkg has $PKG $v1");
is(readlink($ENABLED), $SNIPPET,
   'modules-enabled links the load_module snippet');
like(slurp($SNIPPET) // '',
     qr{^load_module modules/ngx_http_inventory_module\.so;$}m,
     'the snippet loads the module');
my @www = getpwnam('www-data');
my @st = stat $VARLIB;
ok(@st && $st[4] == $www[2] && ($st[2] & 07777) == 0750,
   "$VARLIB: www-data's, 0750");
like(run_ok('man -w inventory-admin', 'man -w inventory-admin'),
     qr{/man8/inventory-admin\.8}, 'man inventory-admin finds the page');
like(run_ok('man inventory-admin | head -5', 'man inventory-admin'),
     qr/inventory-admin - verify, dump/, 'the man page renders');
my @listed = split /\n/, run_ok("dpkg -L $PKG", 'dpkg -L');

# --- serve through the distribution's nginx ------------------------------
# the shipped example (the installed copy), on a free port
my $example = slurp("/usr/share/doc/$PKG/examples/debian-conf.d.conf") // '';
my $store = ($example =~ /^inventory_store (\S+);$/m)[0] // 'none';
like($store, qr{^\Q$VARLIB\E/}, "the example keeps its store in $VARLIB");
ok($example =~ s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/,
   'the example listens on 127.0.0.1:8080 (a free port here)');
write_file($conf_d, $example);
run_ok("$NGINX -t", 'nginx -t with the server block in conf.d');
run_ok($NGINX, "the machine's nginx starts");
$started = 1;
ok(wait_until(sub { get('/v1/health')->{status} == 200 }),
   'it serves /v1/health');
@st = stat $store;
ok(@st && $st[4] == $www[2], 'the store is owned by the worker user');

my $put = req(PUT => '/v1/inventory/DEB-1/store-1',
              { on_hand => 40, min_level => 5 });
is($put->{status}, 201, 'PUT an item') or diag($put->{content});
my $adj = req(POST => '/v1/inventory/DEB-1/store-1/adjustments',
              { delta => -3, reason => 'sold' });
is($adj->{status}, 200, 'adjust it') or diag($adj->{content});
my $res = req(POST => '/v1/inventory/DEB-1/store-1/reservations',
              { quantity => 2 });
is($res->{status}, 201, 'reserve') or diag($res->{content});
my $res_id = eval { InvTest::decode_json($res->{content})->{id} } // '';
my $item = item();
is_deeply([ @{$item}{qw(on_hand reserved available version)} ], [ 37, 2, 35, 3 ],
          'reads back what was written');
like(get('/metrics')->{content}, qr/^inventory_/m, 'metrics are served');

# --- upgrade to a package built from a later commit ----------------------
my $src2 = "$tmp/src";
# the tree as it is (with what is not committed yet), one commit after a
# release tag on the tree's own commit
run_ok("git clone -q $root $src2 && git -C $src2 tag v99.0.0 && cd $root && "
       . "git ls-files -z -co --exclude-standard | tar --null -T - "
       . "--ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $src2 && "
       . "cd $src2 && git add -A && git -c user.name=t66 "
       . "-c user.email=t66\@localhost commit -q --allow-empty "
       . "-m 't/66: a later commit'", 'a clone with one more commit');
my ($deb2, $v2) = build($src2, 'the later commit');
like($v2, qr/^99\.0\.0\+1\.g[0-9a-f]{7}$/,
     'one commit after the tag v99.0.0: version 99.0.0+1.gHASH');
ok(system('dpkg', '--compare-versions', $v2, 'gt', $v1) == 0,
   "a later commit has a higher version ($v2 > $v1)");
my $inode_before = (stat $MODULE)[1];
run_ok("apt-get install -y $deb2", 'apt-get upgrades to it') if $deb2;
is(installed_version(), $v2, "dpkg has $PKG $v2");
is(readlink($ENABLED), $SNIPPET, 'the module stays enabled');
isnt((stat $MODULE)[1], $inode_before, 'the module file was replaced');

# A reload (what the package's trigger asks of a running nginx) keeps the
# loaded module; the new one is loaded by a restart (docs/operations.md).
stop_nginx();
run_ok($NGINX, 'nginx restarted after the upgrade');
ok(wait_until(sub { get('/v1/health')->{status} == 200 }),
   'it serves again');
ok(module_loaded_fresh(), 'the workers run the upgraded module');
is_deeply(item(), $item, 'the item survived the upgrade');
my $r = get("/v1/reservations/$res_id");
is($r->{status}, 200, 'the reservation survived the upgrade');
is(req(POST => '/v1/inventory/DEB-1/store-1/adjustments',
       { delta => 5, reason => 'delivery' })->{status}, 200,
   'writes go on after the upgrade');
is(item()->{on_hand}, 42, 'and are read back');
run_ok("/usr/sbin/inventory-admin verify $store",
       'the installed inventory-admin verifies the live store');

# --- remove, purge ------------------------------------------------------
stop_nginx();
$started = 0;
unlink $conf_d or die "unlink $conf_d: $!";
run_ok("apt-get remove -y $PKG", 'apt-get remove');
ok(!-e $MODULE, 'remove: the module is gone');
ok(!-e $ENABLED, 'remove: it is no longer enabled');
ok(-d $store && -f "$store/data.mdb", 'remove: the data is kept');
run_ok("$NGINX -t", 'nginx -t passes without it');
run_ok("apt-get purge -y $PKG", 'apt-get purge');
is(installed_version(), '', 'purge: dpkg knows nothing of it');
ok(!-e $VARLIB, "purge: $VARLIB is deleted");
my @left = grep { -e $_ && !-d $_ } @listed;
is_deeply(\@left, [], 'purge: no file of the package is left');
ok(!(grep { -e $_ || -l $_ } glob('/etc/nginx/modules-enabled/*inventory*')),
   'purge: no modules-enabled link, not even a .removed one');
for my $f (sort keys %elsewhere_before) {
    is(-e $f ? 1 : 0, $elsewhere_before{$f}, "$f as before");
}
is_deeply(tree('/etc/nginx'), $etc_before, '/etc/nginx is as it was');
ok(!nginx_master(), "the machine's nginx is stopped, as it was");

done_testing();

# ==========================================================================

# build($dir, $what): make deb in $dir; returns (the .deb's path, version)
sub build {
    my ($dir, $what) = @_;
    my $out = run_ok("make -s -C $dir deb", "make deb from $what");
    my ($deb) = $out =~ m{^(/\S+\.deb)$}m;
    ok($deb && -f $deb, "make deb from $what prints the package it built")
        or return ('', '');
    unlike($out, qr/^E: /m, 'lintian reports no error');
    my $v = qx(dpkg-deb -f $deb Version);
    chomp $v;
    return ($deb, $v);
}

# run_ok($shell_command, $name): runs it, one test that it exits 0;
# returns its output (stdout and stderr)
sub run_ok {
    my ($cmd, $name) = @_;
    my $log = "$tmp/cmd.log";
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    my $rc = system("($cmd) >$log 2>&1 </dev/null");
    my $out = slurp($log) // '';
    ok($rc == 0, $name) or diag("$cmd: exit " . ($rc >> 8) . "\n"
                                . substr($out, -3000));
    return $out;
}

sub installed_version {
    my $s = qx(dpkg-query -W -f '\${db:Status-Status} \${Version}' $PKG 2>/dev/null);
    return $s =~ /^installed (\S+)/ ? $1 : '';
}

# the machine's nginx master, if one runs (its pid file names it)
sub nginx_master {
    my $pid = slurp($PIDFILE) // '';
    ($pid) = $pid =~ /(\d+)/;
    return $pid && InvTest::pid_alive($pid) ? $pid : undef;
}

sub stop_nginx {
    my $pid = nginx_master() or return;
    kill 'QUIT', $pid;
    InvTest::wait_gone($pid, 20) or kill 'KILL', $pid;
    InvTest::wait_gone($pid, 5);
}

sub port_free {
    my ($p) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $p,
                                  Listen => 1, ReuseAddr => 1) or return 0;
    close $s;
    return 1;
}

# every worker maps the module file now installed (not a replaced one)
sub module_loaded_fresh {
    my $master = nginx_master() or return 0;
    my @workers = grep { (slurp("/proc/$_/stat") // '') =~ /\) \S+ $master /
                       } map { m{/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    return 0 unless @workers;
    my $inode = (stat $MODULE)[1];
    for my $w (@workers) {
        my ($line) = grep { m{\Q$MODULE\E} } split /\n/,
                     slurp("/proc/$w/maps") // '';
        return 0 unless $line && $line !~ /\(deleted\)/
                        && (split ' ', $line)[4] == $inode;
    }
    return 1;
}

# tree($dir): path => type, mode, owner and content (md5) or link target
sub tree {
    my ($dir) = @_;
    my %t;
    File::Find::find({ no_chdir => 1, wanted => sub {
        my @s = lstat $_ or return;
        my $what = -l _ ? 'link ' . readlink($_)
                 : -d _ ? 'dir'
                 : 'file ' . do {
                       open my $fh, '<', $_ or return;
                       binmode $fh;
                       Digest::MD5->new->addfile($fh)->hexdigest;
                   };
        $t{$_} = sprintf '%s %04o %d:%d', $what, $s[2] & 07777, @s[4, 5];
    } }, $dir);
    return \%t;
}

sub write_file {
    my ($f, $text) = @_;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $text;
    close $fh or die "$f: $!";
}

sub req {
    my ($method, $path, $body) = @_;
    return $http->request($method, "http://127.0.0.1:$port$path", {
        $body ? (content => InvTest::encode_json($body),
                 headers => { 'Content-Type' => 'application/json' }) : (),
    });
}

sub get { req(GET => $_[0]) }

sub item {
    my $r = get('/v1/inventory/DEB-1/store-1');
    return eval { InvTest::decode_json($r->{content}) } // {};
}

sub wait_until {
    my ($cond) = @_;
    my $deadline = time + 15;
    while (time < $deadline) {
        return 1 if eval { $cond->() };
        sleep 0.1;
    }
    return 0;
}

# Puts the machine back: our nginx stopped, our server block gone, the
# package purged if we left it installed.
sub cleanup {
    return unless defined $etc_before;
    stop_nginx() if $started;
    $started = 0;
    unlink $conf_d if $conf_d && -e $conf_d;
    if (installed_version() || -e $ENABLED || -e "$ENABLED.removed") {
        system("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $PKG "
               . ">/dev/null 2>&1 </dev/null");
    }
    # ours: the test skips when it exists before
    system('rm', '-rf', $VARLIB) if -e $VARLIB;
    undef $etc_before;
}
