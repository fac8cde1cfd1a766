// Command scriptgen is the AI script generation service; see `scriptgen help`.
package main

import (
	"os"

	"github.com/scriptgen/scriptgen/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
