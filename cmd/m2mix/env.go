package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/torch"
)

func newEnvCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Show the libtorch this binary runs on: version, CUDA devices and graphs, threads, BLAS, shim path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := torch.GetInfo()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "shim:          %s\n", info.ShimPath)
			fmt.Fprintf(w, "libtorch:      %s\n", info.Version)
			cuda := "not usable"
			if info.CUDADevices > 0 {
				cuda = fmt.Sprintf("usable, %d device(s)", info.CUDADevices)
			}
			fmt.Fprintf(w, "cuda:          %s\n", cuda)
			graphs := "not in this shim (CPU libtorch or no CUDA headers at build time)"
			if torch.GraphsAvailable() {
				graphs = "built in"
			}
			fmt.Fprintf(w, "cuda graphs:   %s\n", graphs)
			fmt.Fprintf(w, "intra-op threads: %d\n", info.Threads)
			blas := "none mapped"
			if len(info.BLAS) > 0 {
				blas = strings.Join(info.BLAS, ", ")
			}
			fmt.Fprintf(w, "blas:          %s\n", blas)
			fmt.Fprintf(w, "parallel info:\n")
			for _, line := range strings.Split(strings.TrimSpace(info.Parallel), "\n") {
				fmt.Fprintf(w, "  %s\n", line)
			}
			return nil
		},
	}
}
