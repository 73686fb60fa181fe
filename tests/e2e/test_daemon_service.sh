# diagnosed.service passes systemd-analyze verify (ExecStart pointed at this build).
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze > /dev/null || die "systemd-analyze not installed (apt-get install systemd)"
sed "s#/usr/local/bin/diagnosed#$DIAGNOSED#" "$DIAG_SRC_DIR/daemon/diagnosed.service" > "$T/diagnosed.service"
out=$(systemd-analyze verify "$T/diagnosed.service" 2>&1)
expect_eq "$?:$out" "0:" "systemd-analyze verify"
for key in Type=notify RuntimeDirectory=diagnose StateDirectory=diagnose Restart=on-failure; do
	grep -qx "$key" "$DIAG_SRC_DIR/daemon/diagnosed.service" && pass "$key" || fail "missing $key"
done
finish
