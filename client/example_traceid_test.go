package client_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/ringkv/ringkv/client"
)

// A request ID of the caller's own (an order number, an HTTP request's ID)
// makes the call easy to find in the nodes' logs; without one, the client
// makes one per call. Either way the call's error carries it.
func ExampleWithTraceID() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		slog.Error("connect", "err", err)
		return
	}
	defer c.Close()

	ctx = client.WithTraceID(ctx, "order-42")
	if _, err := c.Put(ctx, []byte("order/42"), []byte("paid")); err != nil {
		// Every node that served an attempt logged it with request_id=order-42.
		slog.Error("put failed", "request_id", client.TraceIDOf(err), "err", err)
	}
}
