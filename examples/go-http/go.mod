module example.com/slipway/go-http

go 1.19
