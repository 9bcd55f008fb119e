'use strict';
'require view';
'require form';
'require validation';

/*
 * /etc/config/weft as a form. Every check here is the one `weft
 * check-config` makes (src/config/value.rs and schema.rs), so a value the
 * page accepts is one the daemon loads; the daemon still checks everything
 * itself and keeps its running configuration when a reload is refused.
 */

/* Babel intervals: seconds, 0.01 to 655.35, at most two decimals. */
function interval(section_id, value) {
	if (value == null || value === '')
		return true;
	if (!/^[0-9]+(\.[0-9]{1,2})?$/.test(value) || +value < 0.01 || +value > 655.35)
		return _('Seconds between 0.01 and 655.35 with at most 2 decimals (e.g. 4 or 0.5)');
	return true;
}

function uintRange(min, max, hint) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		if (!/^[0-9]+$/.test(value) || +value < min || +value > max)
			return _('A whole number from %d to %d').format(min, max) + (hint ? ' (%s)'.format(hint) : '');
		return true;
	};
}

function absPath(section_id, value) {
	if (value == null || value === '')
		return true;
	return (value.charAt(0) == '/' && !/[\r\n]/.test(value)) ? true : _("An absolute path (starting with '/')");
}

/* 32 bytes in standard base64: 43 characters and one '='. */
function key(section_id, value) {
	if (value == null || value === '')
		return true;
	return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(value) ? true : _('A 32-byte key in base64 (44 characters ending in =)');
}

function protocol(section_id, value) {
	if (value == null || value === '')
		return true;
	if (!/^[0-9]+$/.test(value) || +value < 5 || +value > 255 || +value == 42)
		return _("A route protocol number from 5 to 255 other than 42 (babeld's)");
	return true;
}

function table(section_id, value) {
	if (value == null || value === '' || value == 'main' || value == 'default')
		return true;
	if (!/^[0-9]+$/.test(value) || +value < 1 || +value > 4294967295 || +value == 255)
		return _("'main', 'default' or a table number other than 255 (local)");
	return true;
}

function halfLife(section_id, value) {
	if (value == null || value === '')
		return true;
	if (!/^[0-9]+(\.[0-9]{1,3})?$/.test(value) || +value > 3600)
		return _('Seconds from 0 to 3600, at most 3 decimals');
	return true;
}

function portRange(section_id, value) {
	if (value == null || value === '')
		return true;
	const m = /^([0-9]+)(?:\s*-\s*([0-9]+))?$/.exec(value);
	const ok = (p) => p >= 1 && p <= 65535;
	if (!m || !ok(+m[1]) || (m[2] != null && (!ok(+m[2]) || +m[1] > +m[2])))
		return _('A number of ports, or FIRST-LAST with FIRST <= LAST');
	return true;
}

function meshPrefix(section_id, value) {
	if (value == null || value === '')
		return true;
	const m = /^([0-9a-fA-F:]+)\/([0-9]+)$/.exec(value);
	if (!m || !validation.parseIPv6(m[1]) || +m[2] > 64)
		return _('An IPv6 prefix of length 64 or less, such as fd12:3456:789a::/48');
	return true;
}

function program(section_id, value) {
	if (value == null || value === '')
		return true;
	return /^\S+$/.test(value) ? true : _('A program name or absolute path without spaces');
}

/* host:port, [IPv6]:port or a.b.c.d:port. */
function endpoint(section_id, value) {
	if (value == null || value === '')
		return true;
	let m = /^\[([0-9a-fA-F:.]+)\]:([0-9]+)$/.exec(value);
	if (m && !validation.parseIPv6(m[1]))
		m = null;
	if (!m) {
		m = /^([^:\[\]]+):([0-9]+)$/.exec(value);
		if (m && !/^[0-9.]+$/.test(m[1]) && !/^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(m[1]))
			m = null;
		if (m && /^[0-9.]+$/.test(m[1]) && !validation.parseIPv4(m[1]))
			m = null;
	}
	if (!m || +m[2] < 1 || +m[2] > 65535)
		return _('host:port, [IPv6]:port or a.b.c.d:port with a port from 1 to 65535');
	return true;
}

function linkOptions(s, tab) {
	let o;
	o = s.option(form.Value, 'hello_interval', _('Hello interval'), _('Seconds; empty: the general setting.'));
	o.validate = interval;
	o.optional = true;
	o = s.option(form.Value, 'update_interval', _('Update interval'), _('Seconds; empty: four Hello intervals.'));
	o.validate = interval;
	o.optional = true;
	o = s.option(form.Value, 'rxcost', _('Receive cost'), _('Babel rxcost, 1 to 65534.'));
	o.validate = uintRange(1, 65534, _('65535 is infinity'));
	o.optional = true;
}

return view.extend({
	render() {
		const m = new form.Map('weft', _('weft mesh'),
			_('Zero-trust Babel mesh routing with a WireGuard tunnel on every link. Saving reloads the daemon; a configuration it refuses leaves the running one in place.'));

		let s, o;

		s = m.section(form.NamedSection, 'main', 'weft', _('General'));
		s.anonymous = true;
		s.tab('general', _('General'));
		s.tab('policy', _('Trust policy'));
		s.tab('wireguard', _('WireGuard'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;
		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		['error', 'warn', 'info', 'debug', 'trace'].forEach(l => o.value(l));
		o.default = 'info';
		o = s.taboption('general', form.Value, 'hello_interval', _('Hello interval'), _('Seconds (RFC 8966 default 4).'));
		o.validate = interval;
		o.placeholder = '4';
		o = s.taboption('general', form.Value, 'update_interval', _('Update interval'), _('Seconds; empty: four Hello intervals.'));
		o.validate = interval;
		o = s.taboption('general', form.Value, 'smoothing_half_life', _('Metric smoothing half-life'), _('Seconds, 0 disables (default 4).'));
		o.validate = halfLife;
		o.placeholder = '4';
		o = s.taboption('general', form.Value, 'protocol', _('Route protocol'), _('Kernel route protocol number of weft\'s routes (default 119).'));
		o.validate = protocol;
		o.placeholder = '119';
		o = s.taboption('general', form.Value, 'table', _('Routing table'));
		o.validate = table;
		o.placeholder = 'main';
		o = s.taboption('general', form.Value, 'kernel_priority', _('Kernel route priority'));
		o.validate = uintRange(0, 4294967295);
		o.placeholder = '0';

		o = s.taboption('policy', form.Value, 'private_key_file', _('Private key file'), _('This node\'s WireGuard key, its identity.'));
		o.validate = absPath;
		o.placeholder = '/etc/weft/private.key';
		o = s.taboption('policy', form.Value, 'credential_file', _('Credential file'), _('This node\'s credential, signed by a CA below.'));
		o.validate = absPath;
		o.placeholder = '/etc/weft/node.cred';
		o = s.taboption('policy', form.DynamicList, 'ca_public_key', _('CA public keys'), _('Credentials signed by these keys admit a neighbour.'));
		o.validate = key;
		o = s.taboption('policy', form.DynamicList, 'trusted_key', _('Trusted node keys'), _('For a small network without a CA: the public keys of the nodes you trust.'));
		o.validate = key;
		o = s.taboption('policy', form.Value, 'revocation_file', _('Revocation list'));
		o.validate = absPath;
		o.placeholder = '/etc/weft/revoked';
		o = s.taboption('policy', form.Value, 'mesh_prefix', _('Mesh prefix'), _('IPv6 prefix (length 64 or less) of the key-derived node addresses.'));
		o.validate = meshPrefix;

		o = s.taboption('wireguard', form.ListValue, 'wireguard_backend', _('WireGuard backend'));
		o.value('auto', _('auto (kernel if loaded)'));
		o.value('kernel', _('kernel'));
		o.value('userspace', _('userspace'));
		o.default = 'auto';
		o = s.taboption('wireguard', form.Value, 'userspace_implementation', _('Userspace implementation'));
		o.validate = program;
		o.placeholder = 'wireguard-go';
		o.depends('wireguard_backend', 'userspace');
		o = s.taboption('wireguard', form.Value, 'listen_port', _('First listen port'));
		o.validate = uintRange(1, 65535);
		o.placeholder = '51820';
		o = s.taboption('wireguard', form.Value, 'listen_port_range', _('Listen ports'), _('A number of ports, or FIRST-LAST.'));
		o.validate = portRange;
		o = s.taboption('wireguard', form.Value, 'keepalive', _('Persistent keepalive'), _('Whole seconds, 0 off.'));
		o.validate = uintRange(0, 65535);

		o = s.taboption('advanced', form.Value, 'babel_port', _('Babel port'));
		o.validate = uintRange(1, 65535);
		o.placeholder = '6696';
		o = s.taboption('advanced', form.Value, 'state_file', _('State file'));
		o.validate = absPath;
		o.placeholder = '/var/lib/weft/state';
		o = s.taboption('advanced', form.Value, 'control_socket', _('Control socket'));
		o.validate = absPath;
		o.placeholder = '/var/run/weft.sock';
		o = s.taboption('advanced', form.Value, 'uapi_dir', _('UAPI socket directory'));
		o.validate = absPath;
		o.placeholder = '/var/run/wireguard';

		s = m.section(form.TypedSection, 'interface', _('Interfaces'), _('Raw mesh interfaces on which weft looks for neighbours.'));
		s.addremove = true;
		s.anonymous = false;
		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o = s.option(form.Value, 'ifname', _('Device'));
		o.datatype = 'netdevname';
		o.rmempty = false;
		o = s.option(form.ListValue, 'type', _('Link type'));
		o.value('auto');
		o.value('wireless');
		o.value('wired');
		o.value('tunnel');
		o.default = 'auto';
		o = s.option(form.Flag, 'wireguard', _('WireGuard tunnels'), _('One tunnel per neighbour; off speaks plain Babel (to babeld or BIRD).'));
		linkOptions(s);
		o = s.option(form.Flag, 'split_horizon', _('Split horizon'));
		o.optional = true;
		o = s.option(form.Flag, 'link_quality', _('Link quality (ETX)'));
		o.optional = true;
		o = s.option(form.Flag, 'v4_via_v6', _('IPv4 via IPv6 next hops'));
		o.default = '1';
		o.optional = true;

		s = m.section(form.TypedSection, 'announce', _('Announced prefixes'), _('Must be granted by this node\'s credential when a CA is used.'));
		s.addremove = true;
		s.anonymous = true;
		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o = s.option(form.Value, 'prefix', _('Prefix'));
		o.datatype = 'cidr';
		o.rmempty = false;
		o = s.option(form.Value, 'metric', _('Metric'));
		o.validate = uintRange(0, 65534, _('65535 is infinity'));
		o.placeholder = '0';

		s = m.section(form.TypedSection, 'peer', _('Static peers'), _('Peers reached over another network, such as the internet.'));
		s.addremove = true;
		s.anonymous = false;
		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o = s.option(form.Value, 'public_key', _('Public key'));
		o.validate = key;
		o.rmempty = false;
		o = s.option(form.Value, 'endpoint', _('Endpoint'), _('host:port of the peer\'s WireGuard port.'));
		o.validate = endpoint;
		o = s.option(form.Value, 'keepalive', _('Persistent keepalive'), _('Whole seconds, 0 off; set it behind NAT.'));
		o.validate = uintRange(0, 65535);
		linkOptions(s);

		return m.render();
	}
});
