package browser

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/testnet"
)

//go:embed static
var static embed.FS

// The SPEC section 6 test vector: key seed bytes 0x01..0x20, the relay is
// testnet.StandalonePeerID.
const (
	vectorKeyID = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"
	vectorNonce = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc"
	vectorTS    = "1764633600000"
	vectorSig   = "moTtP8SGHnkwkMvd6O6W2rIJgbYwtNsglK-r16v98M69V4lLlP6SQHnAj3Uo2AtLIzBM3vaxHTT36XvYIe0gAw"
)

// Bounds of the test: the whole browser's life, one wait for the page.
const (
	browserLife = 50 * time.Second
	pageWait    = 15 * time.Second
)

// goPeer is the plain node id of the Go client the page talks to.
const goPeer = "go-peer"

func TestBrowserKeyIDAuth(t *testing.T) {
	chromium := findChromium(t)
	relay := testnet.StartStandalone(t, nil, nil)
	pages := servePages(t)
	browser := startBrowser(t, chromium)

	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	vectorPub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)

	t.Run("key-id", func(t *testing.T) {
		peer := testnet.Dial(t, relay.URL+"?node_id="+goPeer, goPeer)
		testnet.Eventually(t, testnet.Wait, goPeer+" bound", func() bool {
			return slices.Contains(relay.Router.Nodes(), goPeer)
		})

		tab := openTab(t, browser)
		tab.navigate(pages.URL+"/", url.Values{
			"mode":   {"auth"},
			"relay":  {relay.URL},
			"peer":   {goPeer},
			"vpub":   {hex.EncodeToString(vectorPub)},
			"vseed":  {hex.EncodeToString(seed)},
			"vrelay": {testnet.StandalonePeerID},
			"vnonce": {vectorNonce},
			"vts":    {vectorTS},
		})
		tab.waitStatus("sent")

		// The key id computed in JavaScript, of the SPEC's key and of the
		// browser's own key, and the signature of the SPEC's challenge.
		if got := tab.text("vector-keyid"); got != vectorKeyID {
			t.Errorf("page computes the test vector's key id as %q, want %q", got, vectorKeyID)
		}
		if got := tab.text("vector-sig"); got != vectorSig {
			t.Errorf("page signs the test vector's challenge as %q, want %q", got, vectorSig)
		}
		keyID := tab.text("keyid")
		pub, err := nodeauth.KeyIDPublicKey(keyID)
		if err != nil {
			t.Fatalf("the page's key id is no key id: %v", err)
		}
		if got, want := tab.text("pubkey"), hex.EncodeToString(pub); got != want {
			t.Fatalf("the page's key id %s holds the key %s, but the page's key is %s", keyID, want, got)
		}
		if got := tab.text("relay"); got != testnet.StandalonePeerID {
			t.Errorf("challenge relay on the page = %q, want %q", got, testnet.StandalonePeerID)
		}
		if !slices.Contains(relay.Router.Nodes(), keyID) {
			t.Errorf("relay nodes %v lack the browser's key id %s", relay.Router.Nodes(), keyID)
		}

		// Browser -> Go: a direct message from the authenticated key id.
		m := peer.Expect("BrowserHello")
		if m.Sender != keyID || m.Recipient != goPeer {
			t.Fatalf("BrowserHello from %q to %q, want from %q to %q", m.Sender, m.Recipient, keyID, goPeer)
		}
		if sent := tab.text("sent"); m.ID != sent {
			t.Errorf("BrowserHello message_id %q, the page sent %q", m.ID, sent)
		}
		var hello struct{ Text string }
		if err := json.Unmarshal(m.Payload, &hello); err != nil || hello.Text != "hello from WebCrypto" {
			t.Errorf("BrowserHello payload %s (%v)", m.Payload, err)
		}

		// Go -> browser: a direct reply to the key id.
		peer.Send("GoReply", "go-reply-1", keyID, `{"text":"hello from Go"}`)
		tab.waitStatus("done")
		if got := tab.text("reply"); got != "hello from Go" {
			t.Errorf("page shows the reply %q", got)
		}
		if peer.Pending() != 0 {
			t.Errorf("%s got %d unexpected messages", goPeer, peer.Pending())
		}
	})

	t.Run("wrong-signature", func(t *testing.T) {
		tab := openTab(t, browser)
		tab.navigate(pages.URL+"/", url.Values{
			"mode":  {"badsig"},
			"relay": {relay.URL},
		})
		tab.waitStatus("done")
		if got := tab.text("relay"); got != testnet.StandalonePeerID {
			t.Errorf("challenge relay on the page = %q, want %q (no challenge seen?)", got, testnet.StandalonePeerID)
		}
		if got := tab.text("closecode"); got != "4001" {
			t.Errorf("close code seen by the page = %q, want 4001", got)
		}
		if got := tab.text("closereason"); !strings.Contains(got, "authentication failed") {
			t.Errorf("close reason seen by the page = %q, want authentication failed", got)
		}
		if keyID := tab.text("keyid"); slices.Contains(relay.Router.Nodes(), keyID) {
			t.Errorf("a wrong signature bound %s", keyID)
		}
	})
}

// findChromium returns Debian's chromium from PATH. Without it the test
// skips, except under CI, where a browser test that skips tests nothing.
func findChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium not found on PATH (%v): CI must install it (apt-get install -y chromium; .ci/run does)", err)
	}
	t.Skipf("chromium not found on PATH (%v): apt-get install -y chromium", err)
	return ""
}

// servePages serves static/ over HTTP on 127.0.0.1: a secure context for
// WebCrypto, as https is.
func servePages(t *testing.T) *httptest.Server {
	t.Helper()
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(sub))
	// No 404 for the icon in the page's console.
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// syncBuffer is a bytes.Buffer safe for the browser's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBrowser starts headless chromium for the test's tabs; the whole
// browser lives at most browserLife and is closed at cleanup.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	life, cancelLife := context.WithTimeout(context.Background(), browserLife)
	output := &syncBuffer{}
	alloc, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(path),
		chromedp.Headless, // --headless
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		// Shared memory in /tmp: /dev/shm is 64 MB in a default container.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(900, 600),
		chromedp.CombinedOutput(output),
	)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelLife()
		if t.Failed() {
			t.Logf("chromium output:\n%s", quiet(output.String()))
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v\n%s", path, err, output.String())
	}
	t.Logf("%s started in %v", path, time.Since(start).Round(time.Millisecond))
	return ctx
}

// quiet drops the lines of chromium's output about the D-Bus it has no use
// for in a container (a dozen per start).
func quiet(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, ":ERROR:dbus/") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// tab is one page of the browser with its console.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// openTab opens a tab; at cleanup it saves a screenshot of the page to the
// test's artifact directory, closes the tab and logs the page's console
// when the test failed.
func openTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	dir := t.ArtifactDir() // before the Cleanup below, so it is removed after it
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, ctx: ctx}
	consoleDone := make(chan struct{})
	messages := chromedp.Console(ctx) // opens the tab
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, string(m.Type)+": "+m.Text)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		tb.screenshot(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png"))
		cancel()
		select {
		case <-consoleDone:
		case <-time.After(5 * time.Second):
			t.Errorf("console reader still running 5 s after the tab closed")
		}
		if t.Failed() {
			tb.mu.Lock()
			t.Logf("page console:\n%s", strings.Join(tb.console, "\n"))
			tb.mu.Unlock()
		}
	})
	return tb
}

func (tb *tab) navigate(page string, q url.Values) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(page+"?"+q.Encode())); err != nil {
		tb.t.Fatalf("navigate to %s: %v", page, err)
	}
}

// waitStatus waits until the page's #status is want, failing at once when
// it reports an error, and after pageWait.
func (tb *tab) waitStatus(want string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	w, _ := json.Marshal(want)
	expr := `(() => {
		const s = document.getElementById("status").textContent;
		return (s === ` + string(w) + ` || s.startsWith("error")) ? s : false;
	})()`
	got, err := chromedp.Run(ctx, chromedp.Poll[string](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		tb.t.Fatalf("page #status not %q within %v (it is %q): %v", want, pageWait, tb.text("status"), err)
	}
	if got != want {
		tb.t.Fatalf("page #status %q, want %q", got, want)
	}
}

// text returns the textContent of the element with the id.
func (tb *tab) text(id string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	q, _ := json.Marshal(id)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById(`+string(q)+`)?.textContent ?? ""`))
	if err != nil {
		tb.t.Errorf("read #%s: %v", id, err)
	}
	return s
}

// screenshot saves the tab's viewport as PNG.
func (tb *tab) screenshot(path string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Errorf("save screenshot: %v", err)
		return
	}
	tb.t.Logf("screenshot of the page: %s", path)
}
