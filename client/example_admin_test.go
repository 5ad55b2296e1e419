package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ringkv/ringkv/client"
)

// Drain a node out of the cluster and wait until it has left. This example
// needs a running cluster, so it is compiled but not run by go test.
func ExampleClient_RemoveNode() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := client.New(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	epoch, err := c.RemoveNode(ctx, "n3")
	var se *client.ServerError
	switch {
	case errors.Is(err, client.ErrFailedPrecondition) && errors.As(err, &se):
		// Too few nodes would be left, for one; the node says why.
		fmt.Println("refused:", se.Message)
		return
	case err != nil:
		fmt.Println("remove:", err)
		return
	}
	fmt.Println("n3 draining since epoch", epoch)

	for {
		st, err := c.Status(ctx)
		if err != nil {
			fmt.Println("status:", err)
			return
		}
		if !slices.ContainsFunc(st.Members, func(m client.Member) bool { return m.ID == "n3" }) {
			fmt.Println("n3 removed in epoch", st.Epoch)
			return
		}
		rb, err := c.RebalanceStatus(ctx)
		if err != nil {
			fmt.Println("rebalance status:", err)
			return
		}
		fmt.Printf("%.0f%% of the moves done\n", 100*rb.Progress())
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			fmt.Println("n3 still draining:", ctx.Err())
			return
		}
	}
}

func ExampleRebalanceStatus_Progress() {
	st := &client.RebalanceStatus{
		Pending:             make([]client.Move, 10),
		Active:              make([]client.Move, 5),
		FinishedSinceChange: 12,
	}
	fmt.Printf("done: %v, progress: %.1f%%\n", st.Done(), 100*st.Progress())

	st = &client.RebalanceStatus{FinishedSinceChange: 27}
	fmt.Printf("done: %v, progress: %.1f%%\n", st.Done(), 100*st.Progress())
	// Output:
	// done: false, progress: 44.4%
	// done: true, progress: 100.0%
}
