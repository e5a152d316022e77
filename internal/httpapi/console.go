package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxgate/wxgate/internal/errs"
)

// ConsoleRoutes is the operator console (console.Console): HTML pages
// under /console with their own sign-in, sessions and CSRF checks
// (docs/console.md).
type ConsoleRoutes interface {
	// Register mounts the console's routes on the /console group.
	Register(g *gin.RouterGroup)
	// NotFound answers an unknown /console path with an HTML page.
	NotFound(c *gin.Context)
}

// StatusOf is the HTTP status of err, from the one table of errors.go; the
// console renders its error pages with it. An error that is not an
// *errs.Error is 500.
func StatusOf(err error) int {
	if e := errs.As(err); e != nil {
		if s, ok := statusOf[e.Code]; ok {
			return s
		}
	}
	return http.StatusInternalServerError
}
