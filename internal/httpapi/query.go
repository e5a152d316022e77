package httpapi

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/proxy"
)

// acceptQuery refuses a /v1 request whose query string names a parameter
// the route does not take, or names one twice, with invalid_argument listing
// the accepted ones (docs/api.md, "Query parameters"). A typo such as
// ?nextopenid= would otherwise return page 1 again and make a paging client
// loop forever. refused, if set, records the refusal like the handler's own.
func acceptQuery(log *slog.Logger, refused func(*gin.Context, error), accepted ...string) gin.HandlerFunc {
	accepted = append([]string{}, accepted...) // [] in the answer, not null
	takes := "this route takes no query parameters"
	if len(accepted) > 0 {
		takes = "this route accepts: " + strings.Join(accepted, ", ")
	}
	return func(c *gin.Context) {
		if c.Request.URL.RawQuery == "" {
			return
		}
		fields := fieldErrors{}
		var first string
		for name, values := range c.Request.URL.Query() {
			switch {
			case !slices.Contains(accepted, name):
				fields.add(name, fmt.Sprintf("is not a query parameter of this route; %s", takes))
			case len(values) > 1:
				fields.add(name, fmt.Sprintf("is given %d times; give it once", len(values)))
			default:
				continue
			}
			if first == "" || name < first {
				first = name
			}
		}
		if len(fields) == 0 {
			return
		}
		err := errs.E(errs.InvalidArgument, fmt.Sprintf("query parameter %q: %s", first, fields[first])).
			WithDetails(map[string]any{"fields": map[string]string(fields), "accepted": accepted})
		if refused != nil {
			refused(c, err)
		}
		writeError(c, log, err)
	}
}

// restQuery is the query parameters of api's REST route (its export route
// adds "format").
func restQuery(api *proxy.API) []string {
	var names []string
	for _, p := range api.Params {
		if !p.InPath {
			names = append(names, p.Name)
		}
	}
	return names
}
