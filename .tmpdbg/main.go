package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nkscript/nkscript/vm"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code, err := vm.Run(ctx, vm.Options{Kernel: "6.1", Binary: os.Args[1], Args: []string{"version"}, Stdout: os.Stdout, Stderr: os.Stderr, Verbose: true, BootTimeout: 80 * time.Second})
	fmt.Println(code, err)
}
