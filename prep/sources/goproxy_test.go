package sources

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestParseGoProxy(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []proxyEntry
		err  string
	}{
		{in: "https://a.example", want: []proxyEntry{{URL: "https://a.example"}}},
		{in: "https://a.example/,direct", want: []proxyEntry{{URL: "https://a.example"}, {Direct: true}}},
		{in: "https://a.example|https://b.example,off", want: []proxyEntry{
			{URL: "https://a.example", AnyError: true}, {URL: "https://b.example"}, {Off: true}}},
		{in: "off", want: []proxyEntry{{Off: true}}},
		{in: "direct", want: []proxyEntry{{Direct: true}}},
		{in: " a.example ,, file:///srv/mods", want: []proxyEntry{{URL: "https://a.example"}, {URL: "file:///srv/mods"}}},
		{in: "", err: "empty"},
		{in: ",|,", err: "empty"},
		{in: "ftp://a.example", err: "want an http(s) or file URL"},
	} {
		got, err := parseGoProxy(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

// TestFromProxiesFallback follows the go command's rules: after a comma the
// next entry is tried only when the module is not there (404, 410); after a
// pipe, after any error; off stops; direct is skipped with a reason.
func TestFromProxiesFallback(t *testing.T) {
	answers := map[string]error{
		"https://missing.example": &statusError{URL: "m", Code: http.StatusNotFound, Text: "404 Not Found"},
		"https://gone.example":    &statusError{URL: "g", Code: http.StatusGone, Text: "410 Gone"},
		"https://broken.example":  &statusError{URL: "b", Code: http.StatusInternalServerError, Text: "500 Internal Server Error"},
		"https://offline.example": errors.New("dial tcp: connection refused"),
		"https://good.example":    nil,
		"https://other.example":   nil,
	}
	for _, c := range []struct {
		goproxy, served, err string
		tried                []string
	}{
		{goproxy: "https://good.example", served: "https://good.example", tried: []string{"https://good.example"}},
		{goproxy: "https://missing.example,https://gone.example,https://good.example", served: "https://good.example",
			tried: []string{"https://missing.example", "https://gone.example", "https://good.example"}},
		{goproxy: "https://broken.example,https://good.example", err: "500 Internal Server Error", tried: []string{"https://broken.example"}},
		{goproxy: "https://offline.example,https://good.example", err: "connection refused", tried: []string{"https://offline.example"}},
		{goproxy: "https://broken.example|https://offline.example|https://other.example", served: "https://other.example",
			tried: []string{"https://broken.example", "https://offline.example", "https://other.example"}},
		{goproxy: "https://missing.example,off,https://good.example", err: "module downloads disabled", tried: []string{"https://missing.example"}},
		{goproxy: "off", err: "module downloads disabled"},
		{goproxy: "direct", err: "proxy only"},
		{goproxy: "direct,https://good.example", served: "https://good.example", tried: []string{"https://good.example"}},
		{goproxy: "https://missing.example,direct", err: "404 Not Found", tried: []string{"https://missing.example"}},
	} {
		var tried []string
		served, err := fromProxies(c.goproxy, func(p string) error {
			tried = append(tried, p)
			return answers[p]
		})
		if !reflect.DeepEqual(tried, c.tried) {
			t.Errorf("%s: tried %v, want %v", c.goproxy, tried, c.tried)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "GOPROXY="+c.goproxy) {
				t.Errorf("%s: error %v, want one naming GOPROXY and containing %q", c.goproxy, err, c.err)
			}
			continue
		}
		if err != nil || served != c.served {
			t.Errorf("%s: served by %q (%v), want %q", c.goproxy, served, err, c.served)
		}
	}
}

// TestGoProxySettingFromEnvironment: the GOPROXY variable wins.
func TestGoProxySettingFromEnvironment(t *testing.T) {
	t.Setenv("GOPROXY", "https://lab.example/go,off")
	got, err := goProxySetting(t.Context())
	if err != nil || got != "https://lab.example/go,off" {
		t.Fatalf("%q %v", got, err)
	}
}
