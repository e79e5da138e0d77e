package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPrepAVMNISTCmd is a placeholder until its issue lands.
func newPrepAVMNISTCmd() *cobra.Command {
	return &cobra.Command{Use: "avmnist", Short: "not implemented yet", RunE: func(*cobra.Command, []string) error {
		return errors.New("avmnist: not implemented yet")
	}}
}
