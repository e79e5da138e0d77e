package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newEnvCmd() *cobra.Command {
	return &cobra.Command{Use: "env", Short: "not implemented yet", RunE: func(*cobra.Command, []string) error {
		return errors.New("env: not implemented yet")
	}}
}
