package workers

import (
	"github.com/hashicorp/go-retryablehttp"
	"github.com/riverqueue/river"
)

// Worker returns the class's River worker, for rivertest.
func (c HTTPRequestClass) Worker() river.Worker[HTTPRequestArgs] {
	client := retryablehttp.NewClient()
	client.RetryMax, client.Logger = 0, nil
	return &httpRequestWorker{client: client, source: c.paramSource()}
}
