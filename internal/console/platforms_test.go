package console

import (
	"testing"
)

// Links and redirects name the platform only when it is not the default,
// so a deployment of one platform keeps the URLs it always had.
func TestAccountURLNamesOnlyAnotherPlatform(t *testing.T) {
	for _, tc := range []struct {
		name string
		pf   PlatformView
		want string
	}{
		{"the default platform", PlatformView{AppID: "wx1234567890abcdef", Default: true}, "/console/accounts/wxaaaaaaaaaaaaaaa1?flash=bound"},
		{"another platform", PlatformView{AppID: "wxc0ffee0000000002"}, "/console/accounts/wxaaaaaaaaaaaaaaa1?platform=wxc0ffee0000000002&flash=bound"},
		{"no platform (a form naming none that exists)", PlatformView{}, "/console/accounts/wxaaaaaaaaaaaaaaa1?flash=bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := accountURL(tc.pf, "wxaaaaaaaaaaaaaaa1", "bound"); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}
