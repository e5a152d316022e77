// Command wxgate is a multi-tenant gateway for WeChat third-party platforms.
// Run "wxgate --help" for its commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/wxgate/wxgate/internal/app"
)

func main() {
	err := app.Run(context.Background(), os.Args[1:], os.Getenv, app.IO{Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "wxgate: %v\n", err)
		if errors.Is(err, app.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
