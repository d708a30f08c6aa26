#!/usr/bin/env bash
# t_deb.sh - the Debian package: built from this tree with
# dpkg-buildpackage -us -uc -b, then checked.
#
# Proves: the package builds (debhelper, CMake, the unit tests that need no
# peer); lintian passes at --fail-on error,warning (with no override:
# any would be named and justified in debian/ and docs/deploy.md); it holds /usr/sbin/sluice, both man
# pages (which render without a groff warning), the units and the docs;
# /etc/sluice/sluice.yaml is a conffile and is the single-node default
# (`sluice config -n` finds nothing that differs). The .deb is left at
# build-deploy/sluice_VERSION_ARCH.deb for the other deployment tests.
#
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd dpkg-buildpackage dh lintian git man

pkg=$DEPLOY_WORK/pkg
rm -rf "$pkg"
mkdir -p "$pkg/sluice-$DEPLOY_VERSION"
# The tree as git sees it (tracked files and new ones not ignored): what a
# commit of it would hold, without build directories.
(cd "$DEPLOY_SRC" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
    tar --null -T - -cf -) | tar -C "$pkg/sluice-$DEPLOY_VERSION" -xf -

say "dpkg-buildpackage -us -uc -b (log: $pkg/build.log)"
t0=$SECONDS
if ! (cd "$pkg/sluice-$DEPLOY_VERSION" &&
    DEB_BUILD_OPTIONS="parallel=$(nproc)" timeout 1200 dpkg-buildpackage -us -uc -b) >"$pkg/build.log" 2>&1; then
    tail -n 40 "$pkg/build.log" >&2
    fail "dpkg-buildpackage failed"
fi
deb=$pkg/sluice_${DEPLOY_VERSION}_${DEPLOY_ARCH}.deb
[ -f "$deb" ] || fail "no $deb after the build"
cp "$deb" "$DEPLOY_DEB"
ok "built $(basename "$deb") in $((SECONDS - t0)) s: $(stat -c %s "$deb") bytes"

changes=$pkg/sluice_${DEPLOY_VERSION}_${DEPLOY_ARCH}.changes
if ! lintian --fail-on error,warning --display-info "$changes" >"$pkg/lintian.log" 2>&1; then
    cat "$pkg/lintian.log" >&2
    fail "lintian: errors or warnings (above)"
fi
if ls "$DEPLOY_SRC"/debian/*lintian-overrides "$DEPLOY_SRC"/debian/source/lintian-overrides >/dev/null 2>&1; then
    ov=$(cat "$DEPLOY_SRC"/debian/*lintian-overrides "$DEPLOY_SRC"/debian/source/lintian-overrides 2>/dev/null | grep -vc '^#' || true)
else
    ov=0
fi
ok "lintian --fail-on error,warning: clean; $ov override(s); $(grep -c '^[IPXO]:' "$pkg/lintian.log" || true) info note(s)"
sed 's/^/    /' "$pkg/lintian.log" | head -n 20

contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
for f in ./usr/sbin/sluice ./usr/share/man/man8/sluice.8.gz ./usr/share/man/man5/sluice.yaml.5.gz \
    ./lib/systemd/system/sluice@.service ./lib/systemd/system/sluice.socket \
    ./etc/sluice/sluice.yaml ./usr/share/doc/sluice/deploy.md ./usr/share/doc/sluice/copyright; do
    grep -qxF "$f" <<<"$contents" || fail "the package lacks $f"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/sluice/sluice.yaml || fail "/etc/sluice/sluice.yaml is not a conffile"
ok "the package holds the binary, both man pages, the units, the docs; sluice.yaml is a conffile"

for m in docs/man/sluice.8 docs/man/sluice.yaml.5; do
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$DEPLOY_SRC/$m" 2>&1 >/dev/null || true)
    [ -z "$w" ] || fail "$m: groff warnings: $w"
done
ok "both man pages render without a warning"

x=$DEPLOY_WORK/pkg/root
rm -rf "$x"
dpkg-deb -x "$deb" "$x"
n=$("$x/usr/sbin/sluice" -c "$x/etc/sluice/sluice.yaml" config -n | grep -vc '^#' || true)
[ "$n" -eq 0 ] || fail "the packaged sluice.yaml differs from the built-in defaults in $n line(s)"
ok "the packaged /etc/sluice/sluice.yaml is the single-node default"
