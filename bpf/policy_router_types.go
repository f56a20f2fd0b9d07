package bpf

// The keys and values of policy_router's maps, as bpf2go generated them
// from policy_router.c, for package datapath to read and write.
type (
	// PolicyKeyV4 is a key of PolicyRoutesV4: a source prefix.
	PolicyKeyV4 = policyRouterPolicyKeyV4
	// PolicyKeyV6 is a key of PolicyRoutesV6: a source prefix.
	PolicyKeyV6 = policyRouterPolicyKeyV6
	// RoutePolicyV4 is a value of PolicyRoutesV4: the device packets
	// leave by and the next hop (zero: the destination).
	RoutePolicyV4 = policyRouterRoutePolicy
	// RoutePolicyV6 is a value of PolicyRoutesV6.
	RoutePolicyV6 = policyRouterRoutePolicyV6
)

// The names of policy_router's policy maps.
const (
	PolicyRoutesV4 = policyRouterMapPolicyRoutesV4
	PolicyRoutesV6 = policyRouterMapPolicyRoutesV6
)
