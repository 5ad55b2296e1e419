package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ringkv/ringkv/client"
)

// These examples need a running cluster, such as the one `make run` starts,
// so they are compiled but not run by go test.

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Any node will do; the client learns the others from the shard map.
	c, err := client.New(ctx, []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	version, err := c.Put(ctx, []byte("greeting"), []byte("hello"))
	if err != nil {
		fmt.Println("put:", err)
		return
	}
	fmt.Println("put at version", version)

	v, err := c.Get(ctx, []byte("greeting"))
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	fmt.Printf("greeting = %s (version %d, created at %d)\n", v.Data, v.Version, v.CreateVersion)

	deleted, _, err := c.Delete(ctx, []byte("greeting"))
	if err != nil {
		fmt.Println("delete:", err)
		return
	}
	fmt.Println("deleted:", deleted)
}

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c, err := client.New(ctx, []string{"127.0.0.1:7001"},
		client.WithAttemptTimeout(500*time.Millisecond), // per RPC to one node
		client.WithDefaultTimeout(5*time.Second),        // per call whose ctx has no deadline
		client.WithBackoff(20*time.Millisecond, time.Second),
		client.WithCircuitBreaker(5, 2*time.Second),
		client.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))),
	)
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()
}

func ExampleClient_Get() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	v, err := c.Get(ctx, []byte("user/42"))
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no such user")
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Println("the cluster did not answer in time:", err)
	case err != nil:
		fmt.Println("get:", err)
	default:
		fmt.Printf("user/42 = %s\n", v.Data)
	}
}

func ExampleClient_Put() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	// Keys with the same {hash tag} share a shard.
	_, err = c.Put(ctx, []byte("{user42}.cart"), []byte("3 items"))
	var se *client.ServerError
	switch {
	case errors.As(err, &se) && errors.Is(err, client.ErrInvalidArgument):
		// Retrying cannot help; the node's message says what was wrong.
		fmt.Println("rejected:", se.Message)
	case err != nil:
		// The write may or may not have been applied; it was applied at
		// most once.
		fmt.Println("put:", err)
	}
}

func ExampleClient_Status() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()

	st, err := c.Status(ctx)
	if err != nil {
		fmt.Println("status:", err)
		return
	}
	fmt.Printf("epoch %d, %d shards on %d nodes\n", st.Epoch, st.ShardCount, len(st.Members))
	for _, s := range st.Shards {
		fmt.Printf("shard %d: leader %q, replicas %v\n", s.ID, s.Leader, s.Replicas)
	}
}
