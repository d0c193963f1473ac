package bearer

import (
	"net/http/httptest"
	"testing"
)

func TestToken(t *testing.T) {
	k := New("s3cret")
	for _, tc := range []struct {
		name, header, url string
		header0, either   bool
	}{
		{"none", "", "/", false, false},
		{"header", "Bearer s3cret", "/", true, true},
		{"header lower case", "bearer s3cret", "/", true, true},
		{"wrong header", "Bearer s3cre", "/", false, false},
		{"basic", "Basic s3cret", "/", false, false},
		{"query", "", "/?token=s3cret", false, true},
		{"wrong query", "", "/?token=x", false, false},
		{"empty query", "", "/?token=", false, false},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := k.Header(r); got != tc.header0 {
			t.Errorf("%s: Header = %v, want %v", tc.name, got, tc.header0)
		}
		if got := k.HeaderOrQuery(r, "token"); got != tc.either {
			t.Errorf("%s: HeaderOrQuery = %v, want %v", tc.name, got, tc.either)
		}
	}
	var none Token
	if none.Required() || !none.Header(httptest.NewRequest("GET", "/", nil)) {
		t.Error("the zero Token must require nothing")
	}
	if New("").Required() || !k.Required() {
		t.Error("Required wrong")
	}
}
