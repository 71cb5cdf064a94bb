#!/bin/sh
# Sandbox-escape tests: run tests/sandbox_probe, which enters exactly the
# worker's sandbox (the installed policy files, sandbox_enter), once per
# action and check the precise outcome: killed by SIGSYS (seccomp), a call
# failing with the errno the policy gives (Landlock: EACCES; clone3:
# ENOSYS; the memory limit: ENOMEM), or success for what the worker must be
# able to do -- over-blocking is a failure too.  TAP output.
#
# Landlock cases skip when the kernel lacks the ABI they need.  Sanitizer
# builds skip the whole script: their runtimes need ptrace (LeakSanitizer)
# and terabytes of address space, which the sandbox exists to refuse.

: "${top_srcdir:?}" "${top_builddir:?}"
probe="$top_builddir/tests/sandbox_probe"
policy="$top_srcdir/policy"
ca=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca" ] || ca=$policy/landlock.policy	# any readable file will do

info=$("$probe" "$policy" info) || { echo "1..0 # SKIP probe does not run"; exit 0; }
case $info in
*sanitizers=1*)
	echo "1..0 # SKIP sanitizer build: ASan/LSan need ptrace and unbounded address space"
	exit 0 ;;
esac
abi=$(echo "$info" | sed -n 's/^landlock_abi=//p')

n=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# check NAME ACTION EXPECT [MIN_ABI]
#   EXPECT: ok | SIGSYS | errno:ENAME
check() {
	name=$1 action=$2 expect=$3 need=${4:-0}
	n=$((n + 1))
	if [ "$abi" -lt "$need" ]; then
		echo "ok $n - $name # SKIP needs Landlock ABI $need, kernel has $abi"
		return
	fi
	port=443
	[ "$action" = connect-allowed ] && port=0
	"$probe" "$policy" "$ca" "$port" "$action" >"$out" 2>&1
	st=$?
	case $st in
	0) got=ok ;;
	1) got=errno:$(sed -n 's/^result errno \([A-Z]*\).*/\1/p' "$out") ;;
	159) got=SIGSYS ;;
	*) if [ $st -gt 128 ]; then got=signal:$((st - 128)); else got=exit:$st; fi ;;
	esac
	if [ "$got" = "$expect" ]; then
		echo "ok $n - $name: $got"
	else
		echo "not ok $n - $name: got $got, want $expect"
		sed 's/^/# /' "$out"
	fi
}

echo "1..43"
# allowed: the sandbox must not over-block
check "getpid is allowed" getpid ok
check "a thread can be created (clone with CLONE_THREAD)" thread ok
check "the CA bundle is readable" read-ca ok 1
check "TCP connect to the allowed port" connect-allowed ok 4
check "an IPv6 TCP socket with SOCK_NONBLOCK|SOCK_CLOEXEC" socket-tcp6 ok
check "socketpair(AF_UNIX) for libcurl's wake-up" socketpair-unix ok
check "prctl(PR_SET_NAME) names a thread" prctl-name ok
check "ioctl(TCGETS) answers ENOTTY" ioctl-tcgets errno:ENOTTY
check "clone3 answers ENOSYS (glibc falls back to clone)" clone3 errno:ENOSYS
# processes and programs
check "execve /bin/true is killed" execve SIGSYS
check "fork (clone without CLONE_THREAD) is killed" fork SIGSYS
check "vfork is killed" vfork SIGSYS
check "a fork bomb is killed at its first fork" fork-bomb SIGSYS
check "ptrace(PTRACE_TRACEME) is killed" ptrace-traceme SIGSYS
check "ptrace(PTRACE_ATTACH, parent) is killed" ptrace-attach SIGSYS
check "kill(1, 0) is killed" kill-init SIGSYS
check "kill(parent, 0) is killed" kill-parent SIGSYS
# filesystem (Landlock)
check "open /etc/shadow is denied" open-shadow errno:EACCES 1
check "open /etc/passwd (world-readable) is denied" open-passwd errno:EACCES 1
check "open /proc/1/environ is denied" open-environ errno:EACCES 1
check "creating a file in /tmp is denied" write-tmp errno:EACCES 1
# network
check "TCP connect to 127.0.0.1:5432 is denied" connect-5432 errno:EACCES 4
check "TCP connect to a listening, not allowed port is denied" connect-other errno:EACCES 4
check "socket(AF_NETLINK) is killed" socket-netlink SIGSYS
check "socket(AF_PACKET) is killed" socket-packet SIGSYS
check "socket(AF_INET, SOCK_DGRAM) is killed" socket-udp SIGSYS
check "socket(AF_UNIX) is killed" socket-unix SIGSYS
check "bind is killed" bind-tcp SIGSYS
# kernel attack surface
check "unshare(CLONE_NEWUSER) is killed" unshare-user SIGSYS
check "mount is killed" mount SIGSYS
check "bpf is killed" bpf SIGSYS
check "io_uring_setup is killed" io-uring SIGSYS
check "memfd_create is killed" memfd SIGSYS
check "setuid is killed" setuid SIGSYS
check "an x32 syscall is killed" x32 SIGSYS
# memory
check "mprotect(PROT_EXEC) is killed" mprotect-exec SIGSYS
check "mmap(PROT_EXEC) is killed" mmap-exec SIGSYS
check "a memory bomb fails with ENOMEM (RLIMIT_DATA)" memory-bomb errno:ENOMEM
# prctl and ioctl
check "prctl(PR_SET_DUMPABLE, 1) is killed" prctl-dumpable SIGSYS
check "ioctl(TIOCSTI) is killed" ioctl-tiocsti SIGSYS
# identity and scope
n=$((n + 1))
line=$("$probe" "$policy" "$ca" 443 getpid | sed -n 's/^sandbox //p')
case $line in
*seccomp=1*) echo "ok $n - the sandbox reports seccomp on: $line" ;;
*) echo "not ok $n - the sandbox report: '$line'" ;;
esac
n=$((n + 1))
if [ "$(id -u)" -eq 0 ]; then
	case $line in
	uid=65534*) echo "ok $n - the probe ran as nobody" ;;
	*) echo "not ok $n - the probe did not drop to nobody: $line" ;;
	esac
else
	echo "ok $n - the probe ran as $(id -un) # SKIP not root, nothing to drop"
fi
n=$((n + 1))
if [ "$abi" -ge 6 ]; then
	case $line in
	*scoped=1*) echo "ok $n - Landlock scopes abstract unix sockets and signals (ABI $abi)" ;;
	*) echo "not ok $n - Landlock scoping not reported: $line" ;;
	esac
else
	echo "ok $n - Landlock scoping # SKIP needs ABI 6, kernel has $abi"
fi
