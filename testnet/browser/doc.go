// Package browser tests node identity (SPEC section 6) from a real
// browser: headless Chromium, driven by chromedp, makes an Ed25519 key with
// WebCrypto, computes its key id in JavaScript, answers a relay's
// RelayChallenge and exchanges direct messages with a Go client.
//
// The JavaScript a browser node needs is static/gsio-auth.js (no
// dependencies, no build step); static/index.html is the test page.
//
// TestMeshPage (mesh_test.go) loads the admin listener's federation page,
// /ui, from a three-relay federation and checks what it draws as nodes
// connect and a relay stops; GSIO_UPDATE_DOCS=1 refreshes
// docs/mesh-ui.png from it.
//
// The test needs Debian's chromium on PATH (apt-get install -y chromium).
// Without it the test skips, except under CI (env CI set), where it fails.
// The screenshot of each page is saved in the test's artifact directory:
// keep it with go test -artifacts -outputdir DIR.
package browser
