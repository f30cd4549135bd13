// Command commit prints results.Commit(), the commit that shell and Python
// benchmark writers record in benchmarks/results.
package main

import (
	"fmt"

	"roe/benchmarks/internal/results"
)

func main() { fmt.Println(results.Commit()) }
