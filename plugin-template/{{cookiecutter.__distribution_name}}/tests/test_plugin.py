"""The installed distribution is a Flowdapt plugin and ships valid resource definitions."""


def test_plugin_is_loaded(flowdapt_plugins):
    info = flowdapt_plugins.plugins["{{ cookiecutter.__slug }}"]
    assert info.error is None
    assert info.loaded
    assert info.distribution == "{{ cookiecutter.__distribution_name }}"
    assert "flowdapt_resource_definitions" in info.hooks
    assert "{{ cookiecutter.__package_name }}" in flowdapt_plugins.module_prefixes()


def test_resource_definitions(flowdapt_definitions):
    shipped = {(d.kind, d.name) for d in flowdapt_definitions if d.plugin == "{{ cookiecutter.__slug }}"}
    assert shipped == {
        ("workflow", "{{ cookiecutter.__workflow_name }}"),
        ("config", "{{ cookiecutter.__resource_prefix }}-settings"),
        ("trigger_rule", "{{ cookiecutter.__resource_prefix }}-daily"),
    }
