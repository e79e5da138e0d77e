package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPrepMIMICCmd is a placeholder until its issue lands.
func newPrepMIMICCmd() *cobra.Command {
	return &cobra.Command{Use: "mimic", Short: "not implemented yet", RunE: func(*cobra.Command, []string) error {
		return errors.New("mimic: not implemented yet")
	}}
}
