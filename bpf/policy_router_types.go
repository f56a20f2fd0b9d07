package bpf

// The keys and values of policy_router's maps, as bpf2go generated them
// from policy_router.c, for package datapath to read and write.
type (
	// PolicyKeyV4 is a key of PolicyRoutesV4: a source prefix.
	PolicyKeyV4 = policyRouterPolicyKeyV4
	// PolicyKeyV6 is a key of PolicyRoutesV6: a source prefix.
	PolicyKeyV6 = policyRouterPolicyKeyV6
	// MatchKeyV4 is a key of PolicyMatchesV4: a direction, protocol and
	// destination port, and a prefix of the address in that direction.
	// Its Prefixlen counts MatchHeadBits more than the address's prefix.
	MatchKeyV4 = policyRouterMatchKeyV4
	// MatchKeyV6 is a key of PolicyMatchesV6.
	MatchKeyV6 = policyRouterMatchKeyV6
	// RoutePolicyV4 is a value of PolicyRoutesV4 and PolicyMatchesV4: the
	// device packets leave by and the next hop (zero: the destination).
	RoutePolicyV4 = policyRouterRoutePolicy
	// RoutePolicyV6 is a value of PolicyRoutesV6 and PolicyMatchesV6.
	RoutePolicyV6 = policyRouterRoutePolicyV6
)

// The names of policy_router's policy maps.
const (
	PolicyRoutesV4  = policyRouterMapPolicyRoutesV4
	PolicyRoutesV6  = policyRouterMapPolicyRoutesV6
	PolicyMatchesV4 = policyRouterMapPolicyMatchesV4
	PolicyMatchesV6 = policyRouterMapPolicyMatchesV6
)

// The fields of a match key besides the address, as policy_router.c
// defines them.
const (
	// MatchHeadBits is the number of bits of a match key's direction,
	// protocol and port, which its prefix length covers in full.
	MatchHeadBits = 32
	// MatchSrc and MatchDst are the directions of a match key: the
	// address is the packet's source or its destination.
	MatchSrc = 0
	MatchDst = 1
)
