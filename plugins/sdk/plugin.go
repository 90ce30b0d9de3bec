package sdk

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	asymptotev1 "asymptote.dev/asymptote/proto/asymptote/v1"
)

// ProtocolVersion is the version of the method protocol
// (proto/asymptote/v1). It is bumped on breaking changes; a host refuses a
// plugin that speaks another version during the handshake.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the agent and every method
// plugin. The cookie is not a secret: it only stops a plugin binary from
// being run by hand (it then prints a hint and exits).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "ASYMPTOTE_METHOD_PLUGIN",
	MagicCookieValue: "3c9d6e2a51f04b78a6e1d0f9b2c47e85",
}

// PluginName is the name under which a plugin process dispenses its method.
const PluginName = "method"

// Plugin is the go-plugin glue for methods: served in the plugin process it
// exposes Impl over gRPC, and dispensed in the host it returns a *Client.
// Method authors never use it directly; [Serve] does.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the method served; nil on the host side.
	Impl Method
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the method service on s.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	asymptotev1.RegisterMethodServiceServer(s, newServer(p.Impl))
	return nil
}

// GRPCClient returns a *Client talking to the method served on c.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// PluginSet returns the go-plugin plugin set that serves m (nil on the host
// side, where only the client half is used).
func PluginSet(m Method) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &Plugin{Impl: m}}
}
